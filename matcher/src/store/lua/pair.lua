-- Pair waiting users at random, atomically: pick two, create their room,
-- store both `matched` notices and tell their gateways, in one step no other
-- client can interleave.
--
-- KEYS[1] pool (sorted set of waiting user keys)
-- ARGV[1] room and partner TTL, ms
-- ARGV[2] last-partner memory, ms (0: off)
-- ARGV[3] grace for a legacy user whose socket has not connected yet, ms
-- ARGV[4] notice TTL, ms
-- ARGV[5..] fresh ULIDs, one per pair; at most that many pairs are made
--
-- Returns the pairs made, flat: { initiator1, responder1, initiator2, ... }.
--
-- Picks use ZRANDMEMBER with no count, which is uniform over the set, so
-- every waiting user is equally likely to be chosen. A picked user who can
-- no longer be matched (withdrawn, gateway dead, socket never came) is
-- removed on the spot: no ghost is ever handed out as a partner. Users of
-- a draining gateway are withdrawn too: they are about to move.
--
-- A pair with a legacy user gets the room code `<initiator name>_<responder
-- name>_<ULID>`: the original client shows the part that is not its own
-- name as the stranger's name. Other pairs get the bare ULID.
local pool = KEYS[1]
local room_ttl, last_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local grace, notice_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- The user's registration { reg, addr, name } if they can be matched now,
-- else nil (and they are gone from the pool, unless they may still come).
local function usable(user)
  local waiting = redis.call('GET', K.waiting(user))
  if waiting then
    local reg, addr, name = V.waiting_parse(waiting)
    local r = { reg = reg, addr = addr, name = name }
    local loc = redis.call('GET', K.location(user))
    if loc then
      local gateway = V.gateway_of(loc)
      if redis.call('EXISTS', K.gateway_alive(gateway)) == 1
          and redis.call('EXISTS', K.gateway_draining(gateway)) == 0 then
        return r
      end
    elseif V.is_legacy(user) then
      -- A legacy user registers over HTTP, usually moments before its
      -- socket connects. It is never handed to anyone before the socket is
      -- there (a registration alone is no proof of a person), but keeps its
      -- place for the grace period; the socket's arrival wakes the workers.
      -- (A native user registers over its socket: without a location, its
      -- socket is gone, and its gateway registers it again if it comes back.)
      local since = redis.call('ZSCORE', pool, user)
      if since and now - tonumber(since) < grace then
        return nil
      end
    end
  end
  redis.call('ZREM', pool, user)
  redis.call('DEL', K.waiting(user))
  return nil
end

local function pick_first()
  for _ = 1, 64 do
    if redis.call('ZCARD', pool) < 2 then return nil end
    local user = redis.call('ZRANDMEMBER', pool)
    local r = usable(user)
    if r then return user, r end
  end
  return nil
end

local function pick_partner(a)
  local last_a = last_ttl > 0 and redis.call('GET', K.last_partner(a)) or false
  for _ = 1, 64 do
    if redis.call('ZCARD', pool) < 2 then return nil end
    local b = redis.call('ZRANDMEMBER', pool)
    if b ~= a then
      local r = usable(b)
      if r then
        -- The partner just left is acceptable only when nobody else waits.
        -- (Partners are remembered in both directions at once, so checking
        -- a's memory is enough.)
        if last_a ~= b or redis.call('ZCARD', pool) <= 2 then
          return b, r
        end
      end
    end
  end
  return nil
end

-- Store the notice for `user` and tell the gateway holding its socket (a
-- socket elsewhere, or not yet connected, takes the notice when it comes).
local function notify(user, r, code, initiator, peer, peer_name)
  redis.call('SET', K.notice(user), cmsgpack.pack({
    user = user, reg = r.reg, addr = r.addr, name = r.name, room = code,
    initiator = initiator, peer = peer, peer_name = peer_name,
  }), 'PX', notice_ttl)
  if V.is_legacy(user) then
    redis.call('PEXPIRE', K.binding(user), room_ttl)
  end
  local loc = redis.call('GET', K.location(user))
  if loc then
    redis.call('PUBLISH', K.gateway_channel(V.gateway_of(loc)),
      cmsgpack.pack({ kind = 'matched', user = user }))
  end
end

local made = {}
for i = 5, #ARGV do
  local a, ra, b, rb
  for _ = 1, 8 do
    a, ra = pick_first()
    if not a then break end
    b, rb = pick_partner(a)
    if b then break end
  end
  if not (a and b) then break end
  local name_a, name_b = ra.name, rb.name
  local code = ARGV[i]
  if V.is_legacy(a) or V.is_legacy(b) then
    code = V.legacy_room_code(name_a, name_b, code)
  end
  redis.call('ZREM', pool, a, b)
  redis.call('DEL', K.waiting(a), K.waiting(b))
  local room = K.room(code)
  redis.call('HSET', room, a, 'initiator', b, 'responder', 'name:' .. a, name_a, 'name:' .. b, name_b)
  redis.call('PEXPIRE', room, room_ttl)
  redis.call('SET', K.partner(a), V.partner(code, b), 'PX', room_ttl)
  redis.call('SET', K.partner(b), V.partner(code, a), 'PX', room_ttl)
  if last_ttl > 0 then
    redis.call('SET', K.last_partner(a), b, 'PX', last_ttl)
    redis.call('SET', K.last_partner(b), a, 'PX', last_ttl)
  end
  notify(a, ra, code, true, b, name_b)
  notify(b, rb, code, false, a, name_a)
  made[#made + 1] = a
  made[#made + 1] = b
end
return made
