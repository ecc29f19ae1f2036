-- Relay a legacy chat line to the sender's current partner's gateway.
--
-- KEYS[1] partner key of the sender
-- ARGV[1] sender's display name, ARGV[2] message, ARGV[3] sent at, ms
--
-- Returns 1 when relayed, 0 with no partner, -1 when the partner is offline.
local partner = redis.call('GET', KEYS[1])
if not partner then return 0 end
local _, peer = V.partner_parse(partner)
if not peer then return 0 end
local loc = redis.call('GET', K.location(peer))
if not loc then return -1 end
redis.call('PUBLISH', K.gateway_channel(V.gateway_of(loc)), cmsgpack.pack({
  kind = 'chat', to = peer, sender = ARGV[1], message = ARGV[2], sent_ms = tonumber(ARGV[3]),
}))
return 1
