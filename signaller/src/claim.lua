-- Claim a room for a user before joining it, within the most rooms one
-- user may be in at once. Run on the user's own key (its own slot), before
-- join.lua runs on the room's keys: the two cannot be one script on a
-- cluster. The count itself is exact (this script is atomic); what is not
-- atomic is claim-then-join: a claim whose join is then refused is
-- released by the caller, and one whose node died in between lapses at
-- its expiry. For that moment the user counts one room too many, which
-- can only refuse, never admit, an extra room.
--
-- KEYS[1]  the user's rooms (sorted set: room -> claim expiry, ms)
-- ARGV[1]  the room
-- ARGV[2]  now, ms
-- ARGV[3]  the claim's lifetime, ms
-- ARGV[4]  the most rooms at once
--
-- Returns 'held' (the user is in this room already: a replacing socket),
-- 'new', or 'refused'.

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 'refused'
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if held then
  return 'held'
end
return 'new'
