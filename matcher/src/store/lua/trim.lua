-- Trim the register stream below what the workers' group has read and
-- acknowledged: never an entry that no worker has read, nor one that is
-- read but still pending (a dead worker's entries are taken over later).
-- Run by the workers' upkeep, so the stream stays short at the cost of one
-- call a second, not one per registration.
--
-- KEYS[1] register stream; ARGV[1] consumer group
--
-- Returns the number of entries trimmed.
local last = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, delivered = nil, nil
  for i = 1, #group - 1, 2 do
    if group[i] == 'name' then name = group[i + 1] end
    if group[i] == 'last-delivered-id' then delivered = group[i + 1] end
  end
  if name == ARGV[1] then last = delivered end
end
if not last or last == '0-0' then return 0 end
-- Keep from the oldest pending entry, or else from just after the last one
-- read (MINID trims strictly below its argument).
local ms, seq = string.match(last, '^(%d+)-(%d+)$')
local keep_from = ms .. '-' .. (tonumber(seq) + 1)
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then keep_from = pending[2] end
return redis.call('XTRIM', KEYS[1], 'MINID', keep_from)
