-- Record where a user's matching socket is (claim a legacy name).
--
-- KEYS[1] location key of the user (rvc:{m}:loc:<user>)
-- KEYS[2] this gateway's user set  (rvc:{m}:gwusers:<gateway>)
-- ARGV[1] key prefix (rvc:{m}:)
-- ARGV[2] '<gateway id>/<connection id>'
-- ARGV[3] user key
-- ARGV[4] '1' when the name is exclusive (legacy): refuse if another live
--         socket holds it; '0' to take it over regardless
--
-- Returns 1 when claimed, 0 when another live socket holds the name.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[2] and ARGV[4] == '1' then
  local gateway = string.match(current, '^(.*)/[^/]*$')
  if gateway and redis.call('EXISTS', ARGV[1] .. 'gw:' .. gateway) == 1 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
