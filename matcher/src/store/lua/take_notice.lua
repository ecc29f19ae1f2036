-- Take the `matched` notice waiting for a legacy user, exactly once, and
-- only for a socket from the address its registration came from. (A native
-- user's session id is a credential of its own: its notice is taken with a
-- plain GETDEL.)
--
-- KEYS[1] notice key of the user; ARGV[1] the socket's client address
--
-- Returns the notice, or '' when there is none for this socket.
local notice = redis.call('GET', KEYS[1])
if not notice then return '' end
if cmsgpack.unpack(notice).addr ~= ARGV[1] then return '' end
redis.call('DEL', KEYS[1])
return notice
