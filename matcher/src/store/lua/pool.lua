-- The waiting pool and its indexes, kept together: prefixed to every script
-- that calls `P.` (after the key prelude), so no script can put a user in
-- the pool, or take one out, and forget an index.
--
-- K.pool           sorted set: waiting user -> when it entered (ms, Redis clock)
-- K.pool_fresh     sorted set: users to try as the first of a pair (new in
--                  the pool, or wishes relaxed since their last try)
-- K.pool_relax     sorted set: '<kind>:<user>' -> when that user's wishes
--                  relax; kinds: r (same-region window over), i (interest
--                  and language window over), m (the last partner becomes
--                  acceptable), p (a search that sampled is due again)
-- K.prefs(user)    the user's wishes (MessagePack PoolPreferences), if any
-- K.interest(tag)  sorted set of the waiting users who gave `tag`
--
-- The indexes are sorted sets, not sets: a member is drawn by a uniform
-- random rank (`ZRANGE key i i`), exactly uniform at any size, where
-- SRANDMEMBER and SPOP on a hash table are only roughly so.
local P = {}

P.relax_kinds = { 'r', 'i', 'm', 'p' }

-- True while K.pool_relax is known to be empty (a script that counted it
-- says so; every addition below clears it): leaving users have no relax
-- times to remove then.
P.relax_empty = false

-- Put `user` in the pool at time `now` with wishes `blob` (MessagePack, or
-- '' for none), and schedule when they relax; `w` holds the windows, ms:
-- { region =, interest =, rematch = }. A user already in the pool (a
-- duplicate entry, e.g. a legacy socket arriving after its register) is
-- only made fresh again. Returns 1 when added.
function P.join(user, now, blob, w)
  local score = P.int(now)
  redis.call('ZADD', K.pool_fresh, score, user)
  if redis.call('ZADD', K.pool, 'NX', score, user) == 0 then return 0 end
  if blob ~= '' then
    local p = cmsgpack.unpack(blob)
    redis.call('SET', K.prefs(user), blob)
    local tags = p.interests or {}
    for _, t in ipairs(tags) do redis.call('ZADD', K.interest(t), score, user) end
    if p.region and w.region > 0 then
      P.relax_empty = false
      redis.call('ZADD', K.pool_relax, now + w.region, 'r:' .. user)
    end
    if (#tags > 0 or p.language) and not p.strict and w.interest > 0 then
      P.relax_empty = false
      redis.call('ZADD', K.pool_relax, now + w.interest, 'i:' .. user)
    end
  end
  -- (When the last partner becomes acceptable again is scheduled by the
  -- pairing script, only for a user it found nobody for: P.rematch_at.)
  return 1
end

-- Move register entries into the pool: `args` from index `from` holds
-- quadruples (user key, registration id, wishes: MessagePack PoolPreferences
-- or '', when it first entered the pool, ms, or '' for `now`). A
-- registration enters only while the user's waiting key still names it (a
-- user who cancelled, disconnected or was matched is not put back by a late
-- or re-delivered entry), and not while its session is parked (its return,
-- unpark.lua, announces it again). Returns the number of users added.
--
-- What it read and wrote of each user it added is kept in P.entered (see
-- there): the pairing that follows in the same run does not read it again.
function P.enqueue(args, from, now, w)
  local added = 0
  for i = from, #args - 3, 4 do
    local user, reg, blob, since = args[i], args[i + 1], args[i + 2], args[i + 3]
    local waiting = redis.call('GET', K.waiting(user))
    if waiting and V.waiting_parse(waiting) == reg
        and redis.call('EXISTS', K.parked(user)) == 0 then
      local at = since ~= '' and tonumber(since) or now
      if P.join(user, at, blob, w) == 1 then
        added = added + 1
        P.entered[user] = { waiting = waiting, since = at, plain = blob == '' }
      end
    end
  end
  return added
end

-- Users P.enqueue put in the pool during this run: user -> { waiting = the
-- value of its waiting key, since = its pool score, plain = true when it
-- has no wishes (no prefs key) }. Valid until the user leaves the pool or
-- its waiting key is deleted in the same run (the caller forgets it then).
P.entered = {}

-- Acknowledge stream entries `args[from .. to]` of `stream` for `group`,
-- many per XACK.
function P.ack(stream, group, args, from, to)
  local i = from
  while i <= to do
    local last = math.min(to, i + 999)
    redis.call('XACK', stream, group, unpack(args, i, last))
    i = last + 1
  end
end

-- Take `user` out of the pool and every index. `known`: what the caller
-- read already, { has_prefs = bool, interests = list, not_fresh = bool:
-- taken out of the fresh set already } (nil: read it). Returns how many
-- it left of the pool and of the fresh set (0 or 1 each), for callers that
-- keep count.
function P.leave(user, known)
  if known == nil then
    local blob = redis.call('GET', K.prefs(user))
    known = { has_prefs = blob ~= false and blob ~= nil,
              interests = blob and (cmsgpack.unpack(blob).interests or {}) or {} }
  end
  if known.has_prefs then redis.call('DEL', K.prefs(user)) end
  for _, t in ipairs(known.interests) do
    redis.call('ZREM', K.interest(t), user)
  end
  local left = redis.call('ZREM', K.pool, user)
  local left_fresh = 0
  if not known.not_fresh then left_fresh = redis.call('ZREM', K.pool_fresh, user) end
  if not P.relax_empty then
    redis.call('ZREM', K.pool_relax, 'r:' .. user, 'i:' .. user, 'm:' .. user, 'p:' .. user)
  end
  return left, left_fresh
end

-- Make fresh the users whose wishes relaxed by `now` (at most `limit`).
function P.wake_relaxed(now, limit)
  local due = redis.call('ZRANGEBYSCORE', K.pool_relax, '-inf', now, 'LIMIT', 0, limit)
  for _, member in ipairs(due) do
    local user = string.sub(member, 3)
    if redis.call('ZSCORE', K.pool, user) then
      redis.call('ZADD', K.pool_fresh, now, user)
    end
    redis.call('ZREM', K.pool_relax, member)
  end
end

-- `user`, for whom nobody was found, and who has waited `waited` ms: try
-- it again when its last partner becomes acceptable (both waited
-- `rematch` ms, or the memory lapses), if that is still ahead. Its last
-- partner, if it waits too, was tried (or will be) and is woken by its own
-- entry, so the later of the two wakes finds them both acceptable.
function P.rematch_at(user, now, waited, rematch)
  local left = rematch - waited
  if left <= 0 then return end
  local ttl = redis.call('PTTL', K.last_partner(user))
  if ttl > 0 then
    P.relax_empty = false
    redis.call('ZADD', K.pool_relax, now + math.min(ttl, left), 'm:' .. user)
  end
end

-- Try `user` again at `at` (a search that could not look at everyone).
function P.retry_at(user, at)
  P.relax_empty = false
  redis.call('ZADD', K.pool_relax, at, 'p:' .. user)
end

-- A uniformly random member of sorted set `key` of `n` members (n >= 1).
function P.draw(key, n)
  local i = P.int(math.random(n) - 1)
  return redis.call('ZRANGE', key, i, i)[1]
end

-- Integer `n` as the text of a command argument. redis.call formats a Lua
-- number with "%.14g", through the C library's floating-point printing,
-- several times the cost of formatting an integer.
function P.int(n)
  return string.format('%d', n)
end

-- Milliseconds from `now` until the next relaxation, or -1 when none.
function P.next_relax_in(now)
  if P.relax_empty then return -1 end
  local first = redis.call('ZRANGE', K.pool_relax, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end

-- Ban `subjects` for `ms` from `now` under ban id `id` (a record the admin
-- API lists and lifts). Users of those subjects waiting now are never
-- handed out: the pairing script checks bans.
function P.ban(id, subjects, reason, by, now, ms)
  for _, subject in ipairs(subjects) do
    redis.call('SET', K.ban(subject), id, 'PX', math.floor(ms))
  end
  redis.call('SET', K.ban_record(id), cmsgpack.pack({
    id = id, subjects = subjects, reason = reason, by = by,
    since_ms = now, until_ms = now + math.floor(ms),
  }), 'PX', math.floor(ms))
  redis.call('ZADD', K.bans, now + math.floor(ms), id)
  redis.call('ZREMRANGEBYSCORE', K.bans, '-inf', now)
end

-- Milliseconds until the longest ban of `subjects` lifts (0: none).
function P.ban_left(subjects)
  local keys = {}
  for i, subject in ipairs(subjects) do keys[i] = K.ban(subject) end
  return P.ban_left_of_keys(keys)
end

-- Milliseconds until the longest of the bans stored at `keys` lifts (0:
-- none). One look at every ban key; how long is left only when one exists.
function P.ban_left_of_keys(keys)
  if #keys == 0 or redis.call('EXISTS', unpack(keys)) == 0 then return 0 end
  local left = 0
  for _, key in ipairs(keys) do
    left = math.max(left, redis.call('PTTL', key))
  end
  return left
end

-- The registration the `matched` notice stored at `key` is for, or nil.
function P.notice_reg(key)
  local notice = redis.call('GET', key)
  return notice and cmsgpack.unpack(notice).reg or nil
end

-- Forget the stored copy of the notice at `key` if it is the one for
-- registration `reg`, which its socket delivered ('' : none delivered).
function P.forget_delivered(key, reg)
  if reg ~= '' and P.notice_reg(key) == reg then redis.call('DEL', key) end
end

-- Lift ban `id`; 1 when it was there.
function P.unban(id)
  local record = redis.call('GET', K.ban_record(id))
  redis.call('ZREM', K.bans, id)
  if not record then return 0 end
  for _, subject in ipairs(cmsgpack.unpack(record).subjects) do
    if redis.call('GET', K.ban(subject)) == id then redis.call('DEL', K.ban(subject)) end
  end
  redis.call('DEL', K.ban_record(id))
  return 1
end
