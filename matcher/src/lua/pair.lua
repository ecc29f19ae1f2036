-- Pair waiting users at random, atomically: pick two, create their room,
-- and publish both assignments, in one step no other client can interleave.
--
-- KEYS[1] pool (sorted set of waiting user keys)
-- ARGV[1] key prefix (rvc:{m}:)
-- ARGV[2] inbox channel prefix (rvc:inbox:)
-- ARGV[3] room and partner TTL, ms
-- ARGV[4] last-partner memory, ms (0: off)
-- ARGV[5] grace for a user whose socket has not connected yet, ms
-- ARGV[6] notice TTL, ms
-- ARGV[7..] room codes to use, one per pair; at most that many pairs are made
--
-- Returns the pairs made, flat: { initiator1, responder1, initiator2, ... }.
--
-- Picks use ZRANDMEMBER with no count, which is uniform over the set, so
-- every waiting user is equally likely to be chosen. A picked user who can
-- no longer be matched (withdrawn, gateway dead, socket never came) is
-- removed on the spot: no ghost is ever handed out as a partner. Users of
-- a draining gateway are withdrawn too: they are about to move.
local pool = KEYS[1]
local prefix, inbox = ARGV[1], ARGV[2]
local room_ttl, last_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local grace, notice_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function gateway_of(loc)
  return string.match(loc, '^(.*)/[^/]*$')
end

-- The waiting value is '<registration id> <display name>'.
local function waiting_name(user)
  local v = redis.call('GET', prefix .. 'wait:' .. user)
  if not v then return nil end
  local space = string.find(v, ' ', 1, true)
  if not space then return nil end
  return string.sub(v, space + 1)
end

-- The user's display name if they can be matched now, else nil (and gone).
local function usable(user)
  local name = waiting_name(user)
  if name then
    local loc = redis.call('GET', prefix .. 'loc:' .. user)
    if loc then
      local gateway = gateway_of(loc)
      if redis.call('EXISTS', prefix .. 'gw:' .. gateway) == 1
          and redis.call('EXISTS', prefix .. 'draining:' .. gateway) == 0 then
        return name
      end
    elseif string.sub(user, 1, 2) == 'n:' then
      -- A legacy user may register over HTTP before its socket connects.
      -- (A native user registers over its socket: without a location, its
      -- socket is gone, and its gateway re-registers it if it comes back.)
      local since = redis.call('ZSCORE', pool, user)
      if since and now - tonumber(since) < grace then
        return name
      end
    end
  end
  redis.call('ZREM', pool, user)
  redis.call('DEL', prefix .. 'wait:' .. user)
  return nil
end

local function pick_first()
  for _ = 1, 64 do
    if redis.call('ZCARD', pool) < 2 then return nil end
    local user = redis.call('ZRANDMEMBER', pool)
    local name = usable(user)
    if name then return user, name end
  end
  return nil
end

local function pick_partner(a)
  local last_a = last_ttl > 0 and redis.call('GET', prefix .. 'last:' .. a) or false
  for _ = 1, 64 do
    local n = redis.call('ZCARD', pool)
    if n < 2 then return nil end
    local b = redis.call('ZRANDMEMBER', pool)
    if b ~= a then
      local name = usable(b)
      if name then
        -- The partner just left is acceptable only when nobody else waits.
        -- (Partners are remembered in both directions at once, so checking
        -- a's memory is enough.)
        if last_a ~= b or redis.call('ZCARD', pool) <= 2 then
          return b, name
        end
      end
    end
  end
  return nil
end

local function notify(user, code, initiator, peer, peer_name, name)
  local msg = cmsgpack.pack({
    kind = 'matched', user = user, room = code, initiator = initiator,
    peer = peer, peer_name = peer_name, name = name,
  })
  redis.call('SET', prefix .. 'notice:' .. user, msg, 'PX', notice_ttl)
  local loc = redis.call('GET', prefix .. 'loc:' .. user)
  if loc then
    redis.call('PUBLISH', inbox .. gateway_of(loc), msg)
  end
end

local made = {}
for i = 7, #ARGV do
  local a, name_a, b, name_b
  for _ = 1, 8 do
    a, name_a = pick_first()
    if not a then break end
    b, name_b = pick_partner(a)
    if b then break end
  end
  if not (a and b) then break end
  local code = ARGV[i]
  redis.call('ZREM', pool, a, b)
  redis.call('DEL', prefix .. 'wait:' .. a, prefix .. 'wait:' .. b)
  local room = prefix .. 'room:' .. code
  redis.call('HSET', room, a, 'initiator', b, 'responder', 'name:' .. a, name_a, 'name:' .. b, name_b)
  redis.call('PEXPIRE', room, room_ttl)
  redis.call('SET', prefix .. 'partner:' .. a, code .. ' ' .. b, 'PX', room_ttl)
  redis.call('SET', prefix .. 'partner:' .. b, code .. ' ' .. a, 'PX', room_ttl)
  if last_ttl > 0 then
    redis.call('SET', prefix .. 'last:' .. a, b, 'PX', last_ttl)
    redis.call('SET', prefix .. 'last:' .. b, a, 'PX', last_ttl)
  end
  notify(a, code, true, b, name_b, name_a)
  notify(b, code, false, a, name_a, name_b)
  made[#made + 1] = a
  made[#made + 1] = b
end
return made
