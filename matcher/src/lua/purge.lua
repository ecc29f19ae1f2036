-- Forget the users of gateways whose heartbeat has expired: they are out of
-- the pool, their names free, within the heartbeat TTL plus one purge period.
-- Notices are left to expire: a gateway that was only stalled comes back,
-- restores its users and still delivers them.
--
-- KEYS[1] set of known gateways, KEYS[2] pool
-- ARGV[1] key prefix (rvc:{m}:)
--
-- Returns the number of users purged.
local prefix = ARGV[1]
local purged = 0
for _, gateway in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. 'gw:' .. gateway) == 0 then
    local users_key = prefix .. 'gwusers:' .. gateway
    for _, user in ipairs(redis.call('SMEMBERS', users_key)) do
      local loc = redis.call('GET', prefix .. 'loc:' .. user)
      if loc and string.sub(loc, 1, #gateway + 1) == gateway .. '/' then
        redis.call('DEL', prefix .. 'loc:' .. user, prefix .. 'wait:' .. user)
        redis.call('ZREM', KEYS[2], user)
        purged = purged + 1
      end
    end
    redis.call('DEL', users_key)
    redis.call('SREM', KEYS[1], gateway)
  end
end
return purged
