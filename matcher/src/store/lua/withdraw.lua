-- Take a waiting user out of the pool (native `cancel`, or a drain).
--
-- KEYS[1] waiting key, KEYS[2] pool; ARGV[1] user key
-- Returns 1 when the user was waiting.
local was = redis.call('DEL', KEYS[1])
P.leave(ARGV[1])
return was
