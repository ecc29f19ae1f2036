-- Resume a native session on a new connection: check that the connection
-- named by the credential still holds the user's place (so a credential
-- resumes once: a second resume of the same session finds another
-- connection there), that the session is not past its grace deadline,
-- then hand the place to the new connection, log and publish its Resumed
-- event, and return what the client missed, all atomically. The caller
-- subscribed to the room channel first, so the returned entries plus the
-- live ones cover everything exactly once (as in join.lua).
--
-- KEYS[1]  the room's members (hash, see join.lua)
-- KEYS[2]  the room log (stream)
-- ARGV[1]  the room channel (a shard channel: SPUBLISH; it carries the
--          room's hash tag, so it is in the slot of KEYS)
-- ARGV[2]  the resuming user key
-- ARGV[3]  the connection the credential names (the session's last)
-- ARGV[4]  the new connection (<node>/<connection id>)
-- ARGV[5]  the new connection's node
-- ARGV[6]  its Resumed event (MessagePack RoomEvent)
-- ARGV[7]  lifetime of log and members, ms
-- ARGV[8]  the room log's byte budget: a Resumed that would pass it is refused
-- ARGV[9]  now, ms since the Unix epoch
-- ARGV[10] the first log id to return (the client's last_id, plus one)
--
-- Returns {'closed', <reason>} (someone left: the room is over), {'gone'}
-- (the room does not know this user: its state expired), {'used'} (another
-- connection holds the place), {'timed_out'} (the grace deadline passed),
-- {'log_full', <bytes used>}, or
-- {'ok', <resumed id>, <peer user or ''>, <peer node or ''>, <peer name or ''>,
--  <peer's away deadline or ''>, <XRANGE ARGV[10] resumed id>}.

local function reserved(f)
  return f == 'closed' or f == 'bytes'
    or string.sub(f, 1, 5) == 'name:' or string.sub(f, 1, 5) == 'conn:'
    or string.sub(f, 1, 5) == 'away:'
end

local fields = redis.call('HGETALL', KEYS[1])
local h, peer, peer_node = {}, '', ''
for i = 1, #fields, 2 do
  local f = fields[i]
  h[f] = fields[i + 1]
  if f ~= ARGV[2] and not reserved(f) then
    peer, peer_node = f, fields[i + 1]
  end
end
if h['closed'] then
  return {'closed', h['closed']}
end
if not h[ARGV[2]] then
  return {'gone'}
end
if h['conn:' .. ARGV[2]] ~= ARGV[3] then
  return {'used'}
end
local away = h['away:' .. ARGV[2]]
if away and tonumber(away) <= tonumber(ARGV[9]) then
  return {'timed_out'}
end
local used = tonumber(h['bytes'] or '0') or 0
if used + #ARGV[6] > tonumber(ARGV[8]) then
  return {'log_full', used}
end
local peer_name, peer_away = '', ''
if peer ~= '' then
  peer_name = h['name:' .. peer] or ''
  peer_away = h['away:' .. peer] or ''
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[5], 'conn:' .. ARGV[2], ARGV[4])
redis.call('HDEL', KEYS[1], 'away:' .. ARGV[2])
redis.call('HINCRBY', KEYS[1], 'bytes', #ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('SPUBLISH', ARGV[1], id .. ' ' .. ARGV[6])
return {'ok', id, peer, peer_node, peer_name, peer_away, redis.call('XRANGE', KEYS[2], ARGV[10], id)}
