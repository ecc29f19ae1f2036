-- A matching socket closed: forget where it was and take the user out of
-- the pool, unless another socket has taken the user over meanwhile. A
-- socket whose location was never recorded (Redis was down) cleans up too.
--
-- KEYS[1] location key, KEYS[2] pool, KEYS[3] this gateway's user set,
-- KEYS[4] waiting key, KEYS[5] notice key
-- ARGV[1] this socket's location value, ARGV[2] user key
--
-- Returns 1 when released, 0 when the location was not ours.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
