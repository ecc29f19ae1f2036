-- A user blocks whom it was last paired with: the two identities are never
-- paired again (checked by the pairing script, both ways) until the block
-- lapses.
--
-- KEYS[1] the blocker's met key
-- ARGV[1] blocker identity, ARGV[2] how long, ms
--
-- Returns 1 when blocked, 0 with nobody to block.
local met = redis.call('GET', KEYS[1])
if not met then return 0 end
met = cmsgpack.unpack(met)
local now = V.now()
local ms = tonumber(ARGV[2])
for _, pair in ipairs({ { ARGV[1], met.identity }, { met.identity, ARGV[1] } }) do
  local key = K.blocks(pair[1])
  redis.call('ZADD', key, now + ms, pair[2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('PEXPIRE', key, ms)
end
return 1
