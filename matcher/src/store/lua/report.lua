-- A user reports whom it was last paired with, in one step: the report is
-- appended to the reports stream; it counts against the reported identity
-- once per reporter (distinct identities and addresses) within the
-- window; enough distinct reporters ban the reported identity, its address
-- and its session, for a time that doubles with each ban within a week.
--
-- KEYS[1] the reporter's met key, KEYS[2] reports stream, KEYS[3] ban index
-- ARGV[1] reporter identity, ARGV[2] reporter address subject,
-- ARGV[3] reason, ARGV[4] note, ARGV[5] chat lines (JSON array),
-- ARGV[6] reports per hour a reporter may make,
-- ARGV[7] window, ms, ARGV[8] distinct reporters that ban,
-- ARGV[9] first ban, ms, ARGV[10] fresh ban id (ULID),
-- ARGV[11] longest reports stream kept (entries)
--
-- Returns { 0 } with nobody to report, { -1 } over the reporter's hourly
-- limit, else { 1, counted (0/1), ban ms (0: no ban), ban id or '' }.
local met = redis.call('GET', KEYS[1])
if not met then return { 0 } end
met = cmsgpack.unpack(met)
local now = V.now()

local rate = K.report_rate(ARGV[1])
local made = redis.call('INCR', rate)
if made == 1 then redis.call('PEXPIRE', rate, 3600000) end
if made > tonumber(ARGV[6]) then return { -1 } end

redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[11], '*',
  'time', tostring(now), 'room', met.room,
  'reporter', ARGV[1], 'reporter_address', ARGV[2],
  'reported', met.identity, 'reported_address', met.address, 'reported_user', met.peer,
  'reason', ARGV[3], 'note', ARGV[4], 'chat', ARGV[5])

-- One count per reporter: a reporter whose identity or address reported
-- this identity within the window counts no more.
local window = tonumber(ARGV[7])
local by_id, by_addr = K.reporters(met.identity), K.reporter_addresses(met.identity)
redis.call('ZREMRANGEBYSCORE', by_id, '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', by_addr, '-inf', now - window)
local counted = 0
if not redis.call('ZSCORE', by_id, ARGV[1]) and not redis.call('ZSCORE', by_addr, ARGV[2]) then
  redis.call('ZADD', by_id, now, ARGV[1])
  redis.call('ZADD', by_addr, now, ARGV[2])
  counted = 1
end
redis.call('PEXPIRE', by_id, window)
redis.call('PEXPIRE', by_addr, window)
if redis.call('ZCARD', by_id) < tonumber(ARGV[8])
    or redis.call('EXISTS', K.ban(met.identity)) == 1 then
  return { 1, counted, 0, '' }
end

-- Banned: for the first ban's time, doubled for each ban within a week.
local count = K.ban_count(met.identity)
local n = redis.call('INCR', count)
redis.call('PEXPIRE', count, 7 * 24 * 3600 * 1000)
local ms = tonumber(ARGV[9]) * 2 ^ (n - 1)
local subjects = { met.identity, met.address, V.user_subject(met.peer) }
P.ban(ARGV[10], subjects, 'reports', 'reports', now, ms)
redis.call('DEL', by_id, by_addr)
return { 1, counted, ms, ARGV[10] }
