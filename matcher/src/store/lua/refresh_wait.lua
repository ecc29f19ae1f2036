-- Keep a waiting user's registration alive while its socket is open: the
-- waiting key has a short lifetime, so a registration whose socket is gone
-- (and whose gateway could not clean up) ends by itself.
--
-- KEYS[1] waiting key; ARGV[1] registration id, ARGV[2] lifetime, ms
-- Returns 1 when refreshed, 0 when the user no longer waits with it.
local waiting = redis.call('GET', KEYS[1])
if waiting and V.waiting_parse(waiting) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
