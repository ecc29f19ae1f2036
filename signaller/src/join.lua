-- Join a room: check, record the member, log and publish its Joined event,
-- and return the log so far, all atomically, so that the caller's
-- exactly-once cursor (the id of its Joined entry) splits the log exactly
-- into "read here" and "will arrive live" (it subscribed before calling).
--
-- KEYS[1]  the room's members (hash): <user key> -> node, name:<user key> -> name,
--          closed -> reason once someone left
-- KEYS[2]  the room log (stream)
-- ARGV[1]  the room channel
-- ARGV[2]  the joining user key
-- ARGV[3]  the node its socket is on
-- ARGV[4]  its display name
-- ARGV[5]  its Joined event (MessagePack RoomEvent)
-- ARGV[6]  lifetime of log and members, ms
-- ARGV[7]  approximate longest log (MAXLEN ~)
--
-- Returns {'closed'}, {'already_joined'}, {'full'}, or
-- {'ok', <joined id>, <peer user or ''>, <peer node or ''>, <peer name or ''>, <XRANGE - id>}.

if redis.call('HEXISTS', KEYS[1], 'closed') == 1 then
  return {'closed'}
end
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
  return {'already_joined'}
end
local fields = redis.call('HGETALL', KEYS[1])
local peer, peer_node, members = '', '', 0
for i = 1, #fields, 2 do
  local f = fields[i]
  if f ~= 'closed' and string.sub(f, 1, 5) ~= 'name:' then
    members = members + 1
    peer, peer_node = f, fields[i + 1]
  end
end
if members >= 2 then
  return {'full'}
end
local peer_name = ''
if peer ~= '' then
  peer_name = redis.call('HGET', KEYS[1], 'name:' .. peer) or ''
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3], 'name:' .. ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'm', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[1], id .. ' ' .. ARGV[5])
return {'ok', id, peer, peer_node, peer_name, redis.call('XRANGE', KEYS[2], '-', id)}
