-- Append one event to a room's log and publish it, atomically.
--
-- KEYS[1]  the room log (stream)            wire::keys::room_log
-- KEYS[2]  the room's members (hash)        wire::keys::room_members
-- ARGV[1]  the room channel                 wire::keys::room_channel
-- ARGV[2]  the event (MessagePack RoomEvent)
-- ARGV[3]  lifetime of log and members, ms
-- ARGV[4]  approximate longest log (MAXLEN ~)
-- ARGV[5]  '' or, for a Left event, the reason: the room is then closed
--
-- Publishes "<stream id> <event>" so that a subscriber can tell a live copy
-- of an entry from the one it already read from the log. Returns the id.

local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'closed', ARGV[5])
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
return id
