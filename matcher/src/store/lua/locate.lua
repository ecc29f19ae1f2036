-- Record where a user's matching socket is, and take the `matched` notice
-- that may be waiting for it, in one step.
--
-- A legacy name is its only credential, so a legacy socket, when it first
-- records its location (ARGV[3] '1'; a restore puts a location back as it
-- was, '0'):
-- * is refused when the name is bound to another address (registered from
--   there), or when another live socket from its own address holds it (a
--   second tab);
-- * otherwise takes the name over from a live socket of another address
--   (which never registered it), whose gateway is told to close it;
-- and, first time or restore, takes the notice only if it was made for a
-- registration from its own address: a stranger who opens the socket
-- first receives nothing.
--
-- A legacy user already waiting (registered over HTTP before its socket
-- came) is announced on the register stream again, so that a worker pairs
-- it now that it can be paired (the entry is a duplicate, which the pool
-- ignores).
--
-- KEYS[1] location key, KEYS[2] this gateway's user set, KEYS[3] notice
-- key, KEYS[4] binding key, KEYS[5] waiting key (all of the user, but
-- KEYS[2]), KEYS[6] register stream
-- ARGV[1] this socket's location value, ARGV[2] user key
-- ARGV[3] '1' when the socket first records its location, '0' to put it
--         back regardless (a restore)
-- ARGV[4] this socket's client address, ARGV[5] protocol version
--
-- Returns { 1, notice or '' } when located, { 0, '' } when refused.
local legacy = V.is_legacy(ARGV[2])
local first = legacy and ARGV[3] == '1'
if first then
  local bound = redis.call('GET', KEYS[4])
  if bound and bound ~= ARGV[4] then return { 0, '' } end
end
local current = redis.call('GET', KEYS[1])
if first and current and current ~= ARGV[1] then
  local holder_addr, gateway, socket = V.location_parse(current)
  if gateway and redis.call('EXISTS', K.gateway_alive(gateway)) == 1 then
    if holder_addr == ARGV[4] then return { 0, '' } end
    redis.call('PUBLISH', K.gateway_channel(gateway),
      cmsgpack.pack({ kind = 'replaced', user = ARGV[2], socket = socket }))
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if first then
  local waiting = redis.call('GET', KEYS[5])
  if waiting then
    local reg = V.waiting_parse(waiting)
    redis.call('XADD', KEYS[6], '*', V.register_field, cmsgpack.pack({ v = tonumber(ARGV[5]), user = ARGV[2], reg = reg }))
  end
end
local notice = redis.call('GET', KEYS[3])
if notice and (not legacy or cmsgpack.unpack(notice).addr == ARGV[4]) then
  redis.call('DEL', KEYS[3])
  return { 1, notice }
end
return { 1, '' }
