-- Join a room: check, record the member, log and publish its Joined event,
-- and return the log so far, all atomically, so that the caller's
-- exactly-once cursor (the id of its Joined entry) splits the log exactly
-- into "read here" and "will arrive live" (it subscribed before calling).
--
-- A user already in the room is a newer socket of that user: it replaces
-- the older one (whose node learns it from this Joined entry, logged after
-- the older's own), and only the newest connection may write (conn:<user>,
-- checked by publish.lua).
--
-- KEYS[1]  the room's members (hash): <user key> -> node, name:<user key> -> name,
--          conn:<user key> -> the connection that may write for that user,
--          bytes -> bytes logged so far, closed -> reason once someone left,
--          away:<user key> -> grace deadline (ms) while that user's native
--          session is away (away.lua, resume.lua)
-- KEYS[2]  the room log (stream)
-- ARGV[1]  the room channel (a shard channel: SPUBLISH; it carries the
--          room's hash tag, so it is in the slot of KEYS)
-- ARGV[2]  the joining user key
-- ARGV[3]  the node its socket is on
-- ARGV[4]  its display name
-- ARGV[5]  its Joined event (MessagePack RoomEvent)
-- ARGV[6]  lifetime of log and members, ms
-- ARGV[7]  the room log's byte budget: a Joined that would pass it is refused
-- ARGV[8]  the joining connection (<node>/<connection id>)
-- ARGV[9]  bytes kept for the peer's first Joined while it has not joined:
--          a member replacing its socket again and again may not use them
--
-- Returns {'closed'}, {'full'}, {'log_full', <bytes used>}, or
-- {'ok', <joined id>, <peer user or ''>, <peer node or ''>, <peer name or ''>,
--  <XRANGE - id>, <'1' if it replaced an older socket, else '0'>}.

local function reserved(f)
  return f == 'closed' or f == 'bytes'
    or string.sub(f, 1, 5) == 'name:' or string.sub(f, 1, 5) == 'conn:'
    or string.sub(f, 1, 5) == 'away:'
end

-- One read of the members hash: every decision below is made from it.
local fields = redis.call('HGETALL', KEYS[1])
local h, peer, peer_node, others = {}, '', '', 0
for i = 1, #fields, 2 do
  local f = fields[i]
  h[f] = fields[i + 1]
  if f ~= ARGV[2] and not reserved(f) then
    others = others + 1
    peer, peer_node = f, fields[i + 1]
  end
end
if h['closed'] then
  return {'closed'}
end
if others >= 2 then
  return {'full'}
end
local replacing = h[ARGV[2]] and '1' or '0'
local used = tonumber(h['bytes'] or '0') or 0
local limit = tonumber(ARGV[7])
if replacing == '1' and others == 0 then
  limit = limit - tonumber(ARGV[9])
end
if used + #ARGV[5] > limit then
  return {'log_full', used}
end
local peer_name = ''
if peer ~= '' then
  peer_name = h['name:' .. peer] or ''
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3], 'name:' .. ARGV[2], ARGV[4],
  'conn:' .. ARGV[2], ARGV[8])
-- A session that went away and comes back with its ticket is back too.
redis.call('HDEL', KEYS[1], 'away:' .. ARGV[2])
redis.call('HINCRBY', KEYS[1], 'bytes', #ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('SPUBLISH', ARGV[1], id .. ' ' .. ARGV[5])
return {'ok', id, peer, peer_node, peer_name, redis.call('XRANGE', KEYS[2], '-', id), replacing}
