-- Forget the users of gateways whose heartbeat has expired: they are out of
-- the pool, their names free, within the heartbeat TTL plus one purge period.
-- Notices are left to expire: a gateway that was only stalled comes back,
-- restores its users and still delivers them.
--
-- KEYS[1] set of known gateways, KEYS[2] pool
--
-- Returns the number of users purged.
local purged = 0
for _, gateway in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', K.gateway_alive(gateway)) == 0 then
    local users_key = K.gateway_users(gateway)
    for _, user in ipairs(redis.call('SMEMBERS', users_key)) do
      local loc = redis.call('GET', K.location(user))
      if loc and V.gateway_of(loc) == gateway then
        redis.call('DEL', K.location(user), K.waiting(user))
        P.leave(user)
        purged = purged + 1
      end
    end
    redis.call('DEL', users_key)
    redis.call('SREM', KEYS[1], gateway)
  end
end
return purged
