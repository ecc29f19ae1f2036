-- Relay a legacy chat line to the sender's current partner's gateway. Chat
-- goes only between current partners of the same room, checked both ways:
-- a previous partner (whose own partner key still names the sender) cannot
-- write into the sender's new room.
--
-- KEYS[1] partner key of the sender
-- ARGV[1] sender's user key, ARGV[2] sender's display name, ARGV[3] message,
-- ARGV[4] sent at, ms, ARGV[5] chat lines kept per room (for reports)
--
-- Returns 1 when relayed, 0 with no partner, -1 when the partner is offline.
-- The room's last lines are kept (a few minutes) for a report about it.
local mine = redis.call('GET', KEYS[1])
if not mine then return 0 end
local room, peer = V.partner_parse(mine)
if not peer then return 0 end
local theirs = redis.call('GET', K.partner(peer))
if not theirs then return 0 end
local their_room, their_peer = V.partner_parse(theirs)
if their_room ~= room or their_peer ~= ARGV[1] then return 0 end
local loc = redis.call('GET', K.location(peer))
if not loc then return -1 end
local lines = K.room_chat(room)
redis.call('LPUSH', lines, cjson.encode({ from = ARGV[2], message = ARGV[3], sent_ms = tonumber(ARGV[4]) }))
redis.call('LTRIM', lines, 0, tonumber(ARGV[5]) - 1)
redis.call('PEXPIRE', lines, 600000)
redis.call('PUBLISH', K.gateway_channel(V.gateway_of(loc)), cmsgpack.pack({
  kind = 'chat', to = peer, sender = ARGV[2], message = ARGV[3], sent_ms = tonumber(ARGV[4]),
}))
return 1
