-- Append one event to a room's log and publish it, atomically, if the
-- writer may still write and the room's byte budget allows it.
--
-- KEYS[1]  the room log (stream)            wire::keys::room_log
-- KEYS[2]  the room's members (hash)        wire::keys::room_members (see join.lua)
-- ARGV[1]  the room channel                 wire::keys::room_channel (a shard
--          channel: SPUBLISH; it carries the room's hash tag, so it is in
--          the slot of KEYS)
-- ARGV[2]  the event (MessagePack RoomEvent)
-- ARGV[3]  lifetime of log and members, ms
-- ARGV[4]  '' or the most bytes the log may hold with this event in it
--          (signals and chat); '' never refuses (a Left)
-- ARGV[5]  '' or, for a Left event, the reason: the room is then closed
-- ARGV[6]  the fence: a members field that must hold ARGV[7] (the writer's
--          conn:<user>, or, for a peer declared lost, <peer user> -> its node)
-- ARGV[7]  the value the fence must hold
-- ARGV[8]  lifetime of a closed room's log, ms
-- ARGV[9]  '1': a fence field that is missing does not hold (the away mark
--          a timeout is fenced on is gone once the session resumed)
-- ARGV[10] '1': set both lifetimes to ARGV[3] again. The writer asks for it
--          once per refresh period (see room_log.rs, `Limits::refresh_every`;
--          the lifetime it passes is the live lifetime plus that period), so
--          a message costs no PEXPIRE at all most of the time; a key this
--          script finds gone and makes again always gets its lifetime.
-- ARGV[11] '' or '@<µs>': the sender's publish stamp, put after the id in
--          the publication (the receiving node times the fan-out with it)
--
-- Returns {'ok', <stream id>}, {'closed'} (the room is over),
-- {'fenced'} (the fence no longer holds: a newer socket replaced the
-- writer, or the peer declared lost moved), or {'log_full', <bytes used>}.
-- Publishes "<stream id>[@<µs>] <event>" so that a subscriber can tell a
-- live copy of an entry from the one it already read from the log.
--
-- Closing a room leaves only a tombstone (the members hash reduced to its
-- `closed` field, kept for the live lifetime so that no ticket reopens the
-- room); the log goes within ARGV[8].

-- One read of the members hash: the closed mark, the fence, the bytes used.
local state = redis.call('HMGET', KEYS[2], 'closed', ARGV[6], 'bytes')
if state[1] then
  return {'closed'}
end
local refresh = ARGV[10] == '1'
local holder = state[2]
if not holder and ARGV[9] == '1' then
  return {'fenced'}
elseif not holder then
  -- Every member's fence is set by its join and lasts until the room
  -- closes: one missing means the room's state is gone while its sockets
  -- stayed open (Redis restarted empty, or the room sat idle past its
  -- lifetime). Carry on, and put the fence back, so that a replaced writer
  -- is fenced off again from here.
  redis.call('HSET', KEYS[2], ARGV[6], ARGV[7])
  refresh = true
elseif holder ~= ARGV[7] then
  return {'fenced'}
end
local size = #ARGV[2]
if ARGV[4] ~= '' then
  local used = tonumber(state[3] or '0') or 0
  if used + size > tonumber(ARGV[4]) then
    return {'log_full', used}
  end
end
-- NOMKSTREAM: a log that is gone is made again below, with its lifetime.
local id = redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', 'm', ARGV[2])
if not id then
  id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[2])
  refresh = true
end
if ARGV[5] ~= '' then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'closed', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
else
  redis.call('HINCRBY', KEYS[2], 'bytes', size)
  if refresh then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
end
redis.call('SPUBLISH', ARGV[1], id .. ARGV[11] .. ' ' .. ARGV[2])
return {'ok', id}
