-- Put a user in line for the waiting pool, atomically: the user's waiting
-- key (refusing a second registration) and the request on the stream.
--
-- KEYS[1] waiting key of the user, KEYS[2] register stream
-- ARGV[1] registration id (ULID), ARGV[2] display name
-- ARGV[3] MessagePack RegisterRequest for the stream
-- ARGV[4] TTL of the waiting key, ms (a backstop; gateways clean up)
-- ARGV[5] approximate maximum length of the stream
--
-- Returns 1 when queued, 0 when the user is already waiting.
if not redis.call('SET', KEYS[1], V.waiting(ARGV[1], ARGV[2]), 'NX', 'PX', ARGV[4]) then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'm', ARGV[3])
return 1
