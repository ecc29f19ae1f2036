-- Move registrations read from the stream into the waiting pool, then
-- acknowledge the entries, in one step (one round trip, and no window in
-- which an entry is in the pool but still pending). The stream is trimmed
-- separately, and only below what every worker has read and acknowledged
-- (trim.lua).
--
-- A registration enters the pool only while the user's waiting key still
-- names it: a user who cancelled, disconnected or was already matched is not
-- put back by a late or re-delivered stream entry (idempotent on replay).
--
-- KEYS[1] pool (sorted set; score: time it entered, ms, Redis clock)
-- KEYS[2] register stream
-- ARGV[1] consumer group
-- ARGV[2] n, the number of entry ids that follow
-- ARGV[3 .. 2+n] entry ids to acknowledge
-- ARGV[3+n ..] pairs of (user key, registration id)
--
-- Returns the number of users added.
local n = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = 0
for i = 3 + n, #ARGV - 1, 2 do
  local user, reg = ARGV[i], ARGV[i + 1]
  local waiting = redis.call('GET', K.waiting(user))
  if waiting and V.waiting_parse(waiting) == reg then
    added = added + redis.call('ZADD', KEYS[1], 'NX', now, user)
  end
end
for i = 3, 2 + n do
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[i])
end
return added
