-- A native session's socket is gone (closed, or its node died): log its
-- Away event and mark it away until a deadline, atomically, if the writer
-- may still speak for it. The room stays open: the session may resume
-- (resume.lua) until the deadline; past it the peer logs its Left with
-- reason timeout, fenced on this mark.
--
-- KEYS[1]  the room's members (hash, see join.lua); the mark is away:<user>
-- KEYS[2]  the room log (stream)
-- ARGV[1]  the room channel (a shard channel: SPUBLISH; it carries the
--          room's hash tag, so it is in the slot of KEYS)
-- ARGV[2]  the Away event (MessagePack RoomEvent)
-- ARGV[3]  lifetime of log and members, ms
-- ARGV[4]  the fence: a members field that must hold ARGV[5] (the
--          session's own conn:<user>, or, for a node declared lost,
--          <user> -> that node)
-- ARGV[5]  the value the fence must hold
-- ARGV[6]  the user going away
-- ARGV[7]  the deadline, ms since the Unix epoch
--
-- Returns {'ok', <stream id>}, {'closed'}, {'fenced'} (the session has
-- moved: a newer socket holds its place, or its state is gone), or
-- {'away'} (marked away already: nothing logged twice). Never refused for
-- the budget (it is small, and the peer must be told).

local state = redis.call('HMGET', KEYS[1], 'closed', ARGV[4], 'away:' .. ARGV[6])
if state[1] then
  return {'closed'}
end
if state[2] ~= ARGV[5] then
  return {'fenced'}
end
if state[3] then
  return {'away'}
end
redis.call('HSET', KEYS[1], 'away:' .. ARGV[6], ARGV[7])
redis.call('HINCRBY', KEYS[1], 'bytes', #ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SPUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
return {'ok', id}
