-- Move registrations read from the stream into the waiting pool, then
-- acknowledge the entries, in one step (one round trip, and no window in
-- which an entry is in the pool but still pending). The stream is trimmed
-- separately, and only below what every worker has read and acknowledged
-- (trim.lua).
--
-- (The pairing script does the same for the batch it is given, so a worker
-- usually needs only that one call; this one serves entries taken over from
-- a dead worker.) A registration enters the pool only while the user's
-- waiting key still names it: a user who cancelled, disconnected or was
-- already matched is not put back by a late or re-delivered stream entry
-- (idempotent on replay). Nor while its session is parked (its socket
-- dropped before the entry was read): it would be found without a socket
-- and lose its registration; its return (unpark.lua) announces it again. A
-- user already in the pool is made fresh again (a legacy socket arriving
-- after its register announces itself this way).
--
-- KEYS[1] pool (sorted set; score: time it entered, ms, Redis clock)
-- KEYS[2] register stream
-- ARGV[1] consumer group
-- ARGV[2] region window, ARGV[3] interest window, ARGV[4] rematch-after (ms)
-- ARGV[5] n, the number of entry ids that follow
-- ARGV[6 .. 5+n] entry ids to acknowledge
-- ARGV[6+n ..] quadruples of (user key, registration id, wishes: MessagePack
--              PoolPreferences or '', when it first entered the pool, ms, or
--              '' for now: a session back from a dropped socket keeps it)
--
-- Returns the number of users added.
local windows = { region = tonumber(ARGV[2]), interest = tonumber(ARGV[3]),
                  rematch = tonumber(ARGV[4]) }
local n = tonumber(ARGV[5])
local added = P.enqueue(ARGV, 6 + n, V.now(), windows)
P.ack(KEYS[2], ARGV[1], ARGV, 6, 5 + n)
return added
