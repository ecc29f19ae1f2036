-- The sockets one client address holds on one service, across nodes.
-- A hash counts them per node; a sorted set holds each node's lease end.
-- A node renews its lease (and restates its counts) while it lives, so
-- a crashed node's counts lapse with its lease instead of lingering.
-- Times are Redis's (TIME), in ms.
--
-- KEYS[1]  counts (wire::keys::address_sockets): node -> sockets
-- KEYS[2]  leases (wire::keys::address_socket_leases): node -> lease end
-- ARGV[1]  op: 'open' | 'release' | 'refresh'
-- ARGV[2]  node id
-- ARGV[3]  lease, ms
-- ARGV[4]  open: the cap; refresh: this node's current count
-- Returns {allowed (1/0), sockets counted for the address after the op}.
local counts, leases = KEYS[1], KEYS[2]
local op, node, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Forget the nodes whose lease ended.
local dead = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
for _, n in ipairs(dead) do redis.call('HDEL', counts, n) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', leases, '-inf', now) end

local function total()
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', counts)) do sum = sum + tonumber(v) end
  return sum
end

-- Both keys live as long as the longest lease in them.
local function keep()
  local last = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', counts, last[2])
    redis.call('PEXPIREAT', leases, last[2])
  end
end

local function renew()
  redis.call('ZADD', leases, now + lease, node)
  keep()
end

if op == 'open' then
  local sum = total()
  if sum >= tonumber(ARGV[4]) then return {0, sum} end
  redis.call('HINCRBY', counts, node, 1)
  renew()
  return {1, sum + 1}
elseif op == 'release' then
  if redis.call('HINCRBY', counts, node, -1) <= 0 then
    redis.call('HDEL', counts, node)
    redis.call('ZREM', leases, node)
  end
  keep()
  return {1, total()}
elseif op == 'refresh' then
  local n = tonumber(ARGV[4])
  if n > 0 then
    redis.call('HSET', counts, node, n)
    renew()
  else
    redis.call('HDEL', counts, node)
    redis.call('ZREM', leases, node)
    keep()
  end
  return {1, total()}
end
return redis.error_reply('unknown op ' .. tostring(op))
