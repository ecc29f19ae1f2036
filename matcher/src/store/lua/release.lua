-- A matching socket closed: forget where it was, take the user out of the
-- pool and end its partner state (a later socket for the same name inherits
-- nothing), unless another socket has taken the user over meanwhile. A
-- socket whose location was never recorded (Redis was down) cleans up too.
-- A legacy name's binding ends with its registrant's socket.
--
-- KEYS[1] location key, KEYS[2] pool, KEYS[3] this gateway's user set,
-- KEYS[4] waiting key, KEYS[5] notice key, KEYS[6] partner key,
-- KEYS[7] binding key
-- ARGV[1] this socket's location value, ARGV[2] user key,
-- ARGV[3] this socket's client address
--
-- Returns 1 when released, 0 when the location was not ours.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[4], KEYS[5], KEYS[6])
if redis.call('GET', KEYS[7]) == ARGV[3] then
  redis.call('DEL', KEYS[7])
end
P.leave(ARGV[2])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
