-- Take the `matched` notice waiting for a user, exactly once. A legacy
-- socket takes it only if the registration came from its own address.
--
-- KEYS[1] notice key of the user
-- ARGV[1] '1' for a legacy name, ARGV[2] the socket's client address
--
-- Returns the notice, or '' when there is none for this socket.
local notice = redis.call('GET', KEYS[1])
if not notice then return '' end
if ARGV[1] == '1' and cmsgpack.unpack(notice).addr ~= ARGV[2] then return '' end
redis.call('DEL', KEYS[1])
return notice
