-- Put a user in line for the waiting pool, atomically: the user's waiting
-- key (refusing a second registration) and the request on the stream.
--
-- KEYS[1] waiting key, KEYS[2] register stream, KEYS[3] binding key,
-- KEYS[4] notice key, KEYS[5] met key (all of the user), KEYS[6] and
-- KEYS[7] the ban keys of its identity and of its address subject (what
-- bans and blocks name)
-- ARGV[1] registration id (ULID), ARGV[2] client address
-- ARGV[3] the waiting value (wire::stored::WaitingValue, built by the
--         gateway: this script runs twice per match, and every step it
--         leaves to the caller is one fewer on the shared Redis)
-- ARGV[4] MessagePack RegisterRequest for the stream
-- ARGV[5] lifetime of the waiting key, ms (the user's socket refreshes it)
-- ARGV[6] '1' for a legacy name, which is bound to the registrant's address
-- ARGV[7] lifetime of the binding, ms
-- ARGV[8] '1' when this registers again a registration made before (a
--         gateway's restore): refused if it was matched meanwhile, that is
--         if the user's notice names it
-- ARGV[9] how long the last partner may still be reported or blocked once
--         the user asks for the next one, ms
-- ARGV[10] when the gateway accepted this register, µs since the Unix epoch
--          (carried in the stream entry for the stream_wait latency)
-- ARGV[11] the registration whose `matched` this socket delivered last, or
--          '': its notice, if still stored, is forgotten (a notice pushed
--          with the pairing's message stays stored until then, for the
--          paths that take it instead)
--
-- Returns { 1 } when queued, { 0 } when the user is already waiting, { 2 }
-- when this registration was already matched (a restore racing the
-- pairing), { -1 } when the legacy name is bound to another address,
-- { -2, ms left } when the identity or the address is banned.
--
-- The stream is never trimmed here: workers delete the entries they have
-- moved into the pool, so no entry is dropped before a worker reads it.
local ban = P.ban_left_of_keys({ KEYS[6], KEYS[7] })
if ban > 0 then return { -2, ban } end
local legacy = ARGV[6] == '1'
if legacy then
  local bound = redis.call('GET', KEYS[3])
  if bound and bound ~= ARGV[2] then return { -1 } end
end
if ARGV[8] == '1' and P.notice_reg(KEYS[4]) == ARGV[1] then return { 2 } end
if not redis.call('SET', KEYS[1], ARGV[3], 'NX', 'PX', ARGV[5]) then
  return { 0 }
end
if legacy then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[7])
end
-- Asking for the next partner: the last one may be reported or blocked for
-- a little while more, not for the rest of the room's life (LT: only
-- ever shortened).
redis.call('PEXPIRE', KEYS[5], ARGV[9], 'LT')
P.forget_delivered(KEYS[4], ARGV[11])
redis.call('XADD', KEYS[2], '*', V.register_field, ARGV[4], V.register_stamp_field, ARGV[10])
return { 1 }
