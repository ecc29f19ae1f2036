-- A native matching socket closed: its session may come back within the
-- resume grace window, on any gateway (unpark.lua). Forget where the socket
-- was and take the user out of the pool and its indexes, so that nobody is
-- paired with it while it is gone, but keep its registration (the waiting
-- key, now lasting the grace window only), its place (when it entered the
-- pool) and its wishes (both in the parked key), and a `matched` notice made
-- before it could be delivered. Past the window the waiting key and the
-- parked mark lapse by themselves: the user was out of the pool all along,
-- so no ghost is ever paired. Nothing is parked when another socket has
-- taken the user over meanwhile.
--
-- KEYS[1] location key, KEYS[2] pool, KEYS[3] this gateway's user set,
-- KEYS[4] waiting key, KEYS[5] parked key (all of the user, but KEYS[2],
-- KEYS[3])
-- ARGV[1] this socket's location value, ARGV[2] user key, ARGV[3] grace, ms
-- ARGV[4] the registration whose `matched` this socket delivered last, or
--         '': its notice, if still stored (it came with the pairing's
--         message), is forgotten, so a resume never delivers it again
--
-- Returns 1 when parked, 0 when the location was not ours.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[2])
local since = redis.call('ZSCORE', KEYS[2], ARGV[2])
local prefs = redis.call('GET', K.prefs(ARGV[2]))
P.leave(ARGV[2], {
  has_prefs = prefs ~= false,
  interests = prefs and (cmsgpack.unpack(prefs).interests or {}) or {},
})
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
P.forget_delivered(K.notice(ARGV[2]), ARGV[4])
redis.call('SET', KEYS[5], cmsgpack.pack({
  since = since and tonumber(since) or nil, prefs = prefs or nil,
}), 'PX', ARGV[3])
return 1
