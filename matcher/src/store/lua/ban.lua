-- The admin bans or lifts a ban.
--
-- KEYS[1] ban index
-- ARGV[1] 'add' or 'remove'
-- add:    ARGV[2] ban id, ARGV[3] subject, ARGV[4] ms, ARGV[5] reason
--         Returns 1.
-- remove: ARGV[2] ban id. Returns 1 when there was such a ban, else 0.
local now = V.now()
if ARGV[1] == 'add' then
  P.ban(ARGV[2], { ARGV[3] }, ARGV[5], 'admin', now, tonumber(ARGV[4]))
  return 1
end
return P.unban(ARGV[2])
