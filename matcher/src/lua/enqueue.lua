-- Move registrations read from the stream into the waiting pool.
--
-- A registration enters the pool only while the user's waiting key still
-- names it: a user who cancelled, disconnected or was already matched is not
-- put back by a late or re-delivered stream entry (idempotent on replay).
--
-- KEYS[1] pool (sorted set; score: time it entered, ms, Redis clock)
-- ARGV[1] key prefix (rvc:{m}:)
-- ARGV[2..] pairs of (user key, registration id)
--
-- Returns the number of users added.
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = 0
for i = 2, #ARGV - 1, 2 do
  local user, reg = ARGV[i], ARGV[i + 1]
  local waiting = redis.call('GET', prefix .. 'wait:' .. user)
  if waiting and string.sub(waiting, 1, #reg + 1) == reg .. ' ' then
    added = added + redis.call('ZADD', KEYS[1], 'NX', now, user)
  end
end
return added
