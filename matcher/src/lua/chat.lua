-- Relay a legacy chat line to the sender's current partner's gateway.
--
-- KEYS[1] partner key of the sender (rvc:{m}:partner:<user>)
-- ARGV[1] key prefix, ARGV[2] inbox channel prefix
-- ARGV[3] sender's display name, ARGV[4] message, ARGV[5] sent at, ms
--
-- Returns 1 when relayed, 0 with no partner, -1 when the partner is offline.
local partner = redis.call('GET', KEYS[1])
if not partner then return 0 end
local peer = string.match(partner, '^[^ ]* (.*)$')
local loc = redis.call('GET', ARGV[1] .. 'loc:' .. peer)
if not loc then return -1 end
local gateway = string.match(loc, '^(.*)/[^/]*$')
redis.call('PUBLISH', ARGV[2] .. gateway, cmsgpack.pack({
  kind = 'chat', to = peer, sender = ARGV[3], message = ARGV[4], sent_ms = tonumber(ARGV[5]),
}))
return 1
