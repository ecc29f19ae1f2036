-- A native session comes back within its grace window (park.lua), on any
-- gateway: record the new socket's location, and either take the `matched`
-- notice that waits for it (made before it could be delivered: exactly
-- once, as locate.lua does) or put its registration back in line for the
-- pool, with its wishes and the time it first entered (so it keeps how long
-- it has waited): a register entry the workers move into the pool. A
-- session that is not parked (never was, or its window passed) is refused:
-- the client starts a new one.
--
-- KEYS[1] parked key, KEYS[2] location key, KEYS[3] this gateway's user
-- set, KEYS[4] waiting key, KEYS[5] pool, KEYS[6] notice key,
-- KEYS[7] register stream
-- ARGV[1] this socket's location value, ARGV[2] user key,
-- ARGV[3] waiting lifetime, ms, ARGV[4] protocol version,
-- ARGV[5] identity and ARGV[6] address subject of the returning client
--
-- A banned identity, address or session (the client's now, or its
-- registration's) does not come back:
-- { -2, ms left, '', '' }.
--
-- Returns { 0, '', '', '' } when not parked, else { 1, notice or '',
-- waiting value or '', wishes or '' } (the waiting value and wishes only
-- when it is back in line for the pool).
local parked = redis.call('GET', KEYS[1])
if not parked then
  return { 0, '', '', '' }
end
-- Banned: the returning client's identity or address, the session, or the
-- identity and address its registration was made with.
local registered = redis.call('GET', KEYS[4])
local subjects = { ARGV[5], ARGV[6], V.user_subject(ARGV[2]) }
if registered then
  local _, _, identity, address = V.waiting_parse(registered)
  if identity then
    subjects[#subjects + 1] = identity
    subjects[#subjects + 1] = address
  end
end
local ban = P.ban_left(subjects)
if ban > 0 then
  return { -2, tostring(ban), '', '' }
end
parked = cmsgpack.unpack(parked)
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
local notice = redis.call('GET', KEYS[6])
if notice then
  redis.call('DEL', KEYS[6])
  return { 1, notice, '', '' }
end
local waiting = registered
if not waiting then
  return { 1, '', '', '' }
end
redis.call('PEXPIRE', KEYS[4], ARGV[3])
local reg = V.waiting_parse(waiting)
redis.call('XADD', KEYS[7], '*', V.register_field, cmsgpack.pack({
  v = tonumber(ARGV[4]), user = ARGV[2], reg = reg,
  prefs = parked.prefs and cmsgpack.unpack(parked.prefs) or nil,
  since_ms = parked.since,
}))
return { 1, '', waiting, parked.prefs or '' }
