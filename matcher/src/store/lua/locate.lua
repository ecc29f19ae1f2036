-- Record where a user's matching socket is, and take the `matched` notice
-- that may be waiting for it, in one step.
--
-- KEYS[1] location key of the user, KEYS[2] this gateway's user set,
-- KEYS[3] notice key of the user
-- ARGV[1] this socket's location value, ARGV[2] user key
-- ARGV[3] '1' when the name is exclusive (legacy): refuse if another live
--         socket holds it; '0' to take it over regardless
--
-- Returns { 1, notice or '' } when located, { 0, '' } when another live
-- socket holds the name.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] and ARGV[3] == '1' then
  local gateway = V.gateway_of(current)
  if gateway and redis.call('EXISTS', K.gateway_alive(gateway)) == 1 then
    return { 0, '' }
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return { 1, redis.call('GETDEL', KEYS[3]) or '' }
