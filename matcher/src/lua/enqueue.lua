-- Move registrations read from the stream into the waiting pool, and
-- acknowledge the entries, in one step (one round trip, and no window in
-- which an entry is in the pool but still pending).
--
-- A registration enters the pool only while the user's waiting key still
-- names it: a user who cancelled, disconnected or was already matched is not
-- put back by a late or re-delivered stream entry (idempotent on replay).
--
-- KEYS[1] pool (sorted set; score: time it entered, ms, Redis clock)
-- KEYS[2] register stream
-- ARGV[1] key prefix (rvc:{m}:)
-- ARGV[2] consumer group
-- ARGV[3] n, the number of entry ids that follow
-- ARGV[4 .. 3+n] entry ids to acknowledge
-- ARGV[4+n ..] pairs of (user key, registration id)
--
-- Returns the number of users added.
local prefix = ARGV[1]
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = 0
for i = 4 + n, #ARGV - 1, 2 do
  local user, reg = ARGV[i], ARGV[i + 1]
  local waiting = redis.call('GET', prefix .. 'wait:' .. user)
  if waiting and string.sub(waiting, 1, #reg + 1) == reg .. ' ' then
    added = added + redis.call('ZADD', KEYS[1], 'NX', now, user)
  end
end
for i = 4, 3 + n do
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[i])
end
return added
