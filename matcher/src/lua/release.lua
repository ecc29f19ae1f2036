-- A matching socket closed: forget where it was and take the user out of
-- the pool, unless another socket has taken the user over meanwhile. A
-- socket whose location was never recorded (Redis was down) cleans up too.
--
-- KEYS[1] location key (rvc:{m}:loc:<user>)
-- KEYS[2] pool
-- KEYS[3] this gateway's user set
-- ARGV[1] key prefix, ARGV[2] '<gateway id>/<connection id>', ARGV[3] user key
--
-- Returns 1 when released, 0 when the location was not ours.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[2] then
  return 0
end
local user = ARGV[3]
redis.call('DEL', KEYS[1], ARGV[1] .. 'wait:' .. user, ARGV[1] .. 'notice:' .. user)
redis.call('ZREM', KEYS[2], user)
redis.call('SREM', KEYS[3], user)
return 1
