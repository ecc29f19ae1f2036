-- Pair waiting users at random, atomically, as their wishes allow: pick
-- two, create their room, store both `matched` notices and tell their
-- gateways, in one step no other client can interleave. First, the
-- register entries the worker just read go into the pool and are
-- acknowledged (P.enqueue, P.ack), so a worker's batch costs one call;
-- entries taken over from a dead worker come through here too.
--
-- KEYS[1] pool (sorted set of waiting user keys; its indexes are in pool.lua)
-- KEYS[2] register stream
-- ARGV[1] room and partner TTL, ms
-- ARGV[2] last-partner memory, ms (0: off)
-- ARGV[3] grace for a legacy user whose socket has not connected yet, ms
-- ARGV[4] notice TTL, ms
-- ARGV[5] rematch-after, ms: two users who just left each other may meet
--         again once both have waited this long
-- ARGV[6] interest window, ms: how long interests and language must be
--         shared (for users who are not strict)
-- ARGV[7] region window, ms: how long the same region is required
-- ARGV[8] random seed for this run
-- ARGV[9] u, the number of fresh ULIDs that follow, one per pair; at most
--         that many pairs are made
-- ARGV[10 .. 9+u] the ULIDs
-- ARGV[10+u] consumer group, ARGV[11+u] n, the number of entry ids that
--         follow (0: nothing to enqueue)
-- ARGV[12+u .. 11+u+n] register entry ids to acknowledge
-- ARGV[12+u+n ..] quadruples of (user key, registration id, wishes, when
--         it first entered the pool or ''), for P.enqueue
--
-- Returns { ms until the next relaxation (-1: none), fresh users left,
--           initiator1, responder1, initiator2, ... }.
--
-- Who pairs with whom. A pair starts from a *fresh* user A (new in the pool,
-- or whose wishes relaxed since it was last tried), picked uniformly. A's
-- partner is picked uniformly among the users compatible with A:
-- * each accepts the other: a user with interests, inside its interest
--   window (always, when strict), accepts only someone sharing one; a user
--   with a language, inside the same window, only someone with the same
--   language or none; a user with a region, inside the region window, only
--   someone of the same region or none;
-- * they did not just leave each other, unless both have waited longer than
--   rematch-after (the memory is kept in both directions, checked both ways).
-- Candidates are the union of A's interest sets when A needs a shared
-- interest, else the whole pool. The pick samples the candidates (bounded
-- work, whatever the pool's size), correcting for users in several of A's
-- sets, so each compatible user is equally likely; when sampling fails and
-- the candidates are few, it looks at all of them. A user for whom no
-- partner was found stops being fresh: it waits to be picked as someone
-- else's partner, or until its wishes relax. A search that could not look at
-- every candidate is tried again later (retry), so a possible pair is never
-- left waiting for good.
--
-- Each gateway holding matched users gets one message per run listing them
-- (user, socket, and a native user's notice, stamped with the Redis time):
-- its sockets write `matched` without another round trip. The notices are
-- stored too, for whichever socket comes for them instead.
--
-- A picked user who can no longer be matched (withdrawn, gateway dead or
-- draining, socket never came) is removed on the spot: no ghost is ever
-- handed out as a partner.
--
-- A pair with a legacy user gets the room code `<initiator name>_<responder
-- name>_<ULID>`: the original client shows the part that is not its own
-- name as the stranger's name. Other pairs get the bare ULID.
local pool = KEYS[1]
local room_ttl, last_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local grace, notice_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
-- The same lifetimes as given, for the commands: a Lua number handed to
-- redis.call is formatted with "%.14g" on every call, a cost of its own.
local room_ttl_s, last_ttl_s, notice_ttl_s = ARGV[1], ARGV[2], ARGV[4]
local rematch_after, interest_wait = tonumber(ARGV[5]), tonumber(ARGV[6])
local region_wait = tonumber(ARGV[7])
math.randomseed(tonumber(ARGV[8]))
local now, now_us = V.now()
local ulids = tonumber(ARGV[9])
local first_ulid, last_ulid = 10, 9 + ulids
do
  local at = 10 + ulids
  local n = tonumber(ARGV[at + 1])
  if n > 0 then
    P.enqueue(ARGV, at + 2 + n, now, { region = region_wait, interest = interest_wait,
                                       rematch = rematch_after })
    P.ack(KEYS[2], ARGV[at], ARGV, at + 2, at + 1 + n)
  end
end

-- Draws before a search gives up sampling; candidates looked at one by one
-- when sampling failed; delay before a sampled search is tried again, ms.
local SAMPLES, ENUMERATE_MAX, RETRY_MS = 16, 128, 1000

P.wake_relaxed(now, 512)
P.relax_empty = redis.call('ZCARD', K.pool_relax) == 0

-- The sizes of the pool and of the fresh set, counted once and then kept
-- as users leave (every removal below goes through leave()).
local pool_n, fresh_n = nil, redis.call('ZCARD', K.pool_fresh)
local function pool_size()
  if pool_n == nil then pool_n = redis.call('ZCARD', pool) end
  return pool_n
end
local function leave(user, known)
  P.entered[user] = nil
  local left, left_fresh = P.leave(user, known)
  if pool_n then pool_n = pool_n - left end
  fresh_n = fresh_n - left_fresh
end

-- What the script knows of each user it looked at: nil not yet read, false
-- not in the pool, else { user, list, tags (set), lang, region, last,
-- need_tag, need_lang, need_region, waited (read when needed) }.
local known = {}

-- How long `w`'s user has waited, ms (nil: not in the pool).
local function waited(w)
  if w.waited == nil and P.entered[w.user] then
    w.waited = now - P.entered[w.user].since
  elseif w.waited == nil then
    local since = redis.call('ZSCORE', pool, w.user)
    w.waited = since and (now - tonumber(since)) or false
  end
  return w.waited or nil
end

-- The wishes of `user`, or false when not in the pool. A user without
-- wishes costs two reads (one when it entered the pool in this run: it is
-- known to have none): how long it waited matters only against its last
-- partner then, and is read when that comes up. `check` makes sure the
-- user is in the pool (a user drawn from the pool itself is; one drawn from
-- an interest set has wishes, which are checked).
local function wishes(user, check)
  local w = known[user]
  if w ~= nil then return w end
  local entered = P.entered[user]
  local blob = false
  if not (entered and entered.plain) then blob = redis.call('GET', K.prefs(user)) end
  local p = blob and cmsgpack.unpack(blob) or {}
  w = { user = user, list = p.interests or {}, tags = {}, lang = p.language,
        region = p.region, has_prefs = blob ~= false,
        last = last_ttl > 0 and redis.call('GET', K.last_partner(user)) or false }
  if blob or check then
    if not waited(w) then
      known[user] = false
      return false
    end
  end
  for _, tag in ipairs(w.list) do w.tags[tag] = true end
  if blob then
    local narrow = p.strict or w.waited < interest_wait
    w.need_tag = #w.list > 0 and narrow
    w.need_lang = w.lang ~= nil and narrow
    w.need_region = w.region ~= nil and w.waited < region_wait
  end
  known[user] = w
  return w
end

local function accepts(x, y)
  if x.need_tag then
    local shared = false
    for _, tag in ipairs(x.list) do
      if y.tags[tag] then shared = true break end
    end
    if not shared then return false end
  end
  if x.need_lang and y.lang and y.lang ~= x.lang then return false end
  if x.need_region and y.region and y.region ~= x.region then return false end
  return true
end

local function compatible(a, b)
  if a.user == b.user or not accepts(a, b) or not accepts(b, a) then return false end
  if (a.last == b.user or b.last == a.user)
      and not ((waited(a) or 0) >= rematch_after and (waited(b) or 0) >= rematch_after) then
    return false
  end
  return true
end

-- Whether `gateway` is alive and not draining (looked up once per run:
-- nothing else runs meanwhile).
local gateway_ok = {}
local function serving(gateway)
  if gateway == nil then return false end
  local ok = gateway_ok[gateway]
  if ok == nil then
    ok = redis.call('EXISTS', K.gateway_alive(gateway)) == 1
        and redis.call('EXISTS', K.gateway_draining(gateway)) == 0
    gateway_ok[gateway] = ok
  end
  return ok
end

-- The user's registration { reg, addr, identity, address, name, gateway,
-- socket } if they can be matched now, else nil (and they are gone from
-- the pool, unless they may still come). A user whose identity or address
-- was banned while it waited is gone: never handed out.
local any_ban = nil
local function banned(identity, address)
  -- Every ban is listed in K.bans (P.ban): none listed, none to look up.
  if any_ban == nil then any_ban = redis.call('ZCARD', K.bans) > 0 end
  return any_ban and redis.call('EXISTS', K.ban(identity), K.ban(address)) > 0
end

local function usable(user)
  local waiting = P.entered[user] and P.entered[user].waiting
      or redis.call('GET', K.waiting(user))
  local reg, addr, identity, address, name
  if waiting then reg, addr, identity, address, name = V.waiting_parse(waiting) end
  if reg and not banned(identity, address) then
    local loc = redis.call('GET', K.location(user))
    if loc then
      local _, gateway, socket = V.location_parse(loc)
      if serving(gateway) then
        return { reg = reg, addr = addr, identity = identity, address = address,
                 name = name, gateway = gateway, socket = socket }
      end
    elseif V.is_legacy(user) then
      -- A legacy user registers over HTTP, usually moments before its
      -- socket connects. It is never handed to anyone before the socket is
      -- there (a registration alone is no proof of a person), but keeps its
      -- place for the grace period; the socket's arrival makes it fresh.
      -- (A native user registers over its socket: without a location, its
      -- socket is gone, and its gateway registers it again if it comes back.)
      local since = redis.call('ZSCORE', pool, user)
      if since and now - tonumber(since) < grace then
        return nil
      end
    end
  end
  leave(user)
  redis.call('DEL', K.waiting(user))
  known[user] = false
  return nil
end

-- Whether the identities of registrations `ra` and `rb` blocked each
-- other (a block is stored both ways, so one look is enough).
local function blocked(ra, rb)
  local until_ms = redis.call('ZSCORE', K.blocks(ra.identity), rb.identity)
  return until_ms and tonumber(until_ms) > now
end

-- Pick uniformly among `list` the users compatible with `a` and usable.
local function pick_among(a, list)
  local eligible = {}
  for _, b in ipairs(list) do
    local wb = wishes(b)
    if wb and compatible(a, wb) then eligible[#eligible + 1] = wb end
  end
  while #eligible > 0 do
    local i = math.random(#eligible)
    local wb = eligible[i]
    local rb = usable(wb.user)
    if rb and not blocked(a.r, rb) then return wb, rb end
    eligible[i] = eligible[#eligible]
    eligible[#eligible] = nil
  end
  return nil
end

-- A partner for `a` (wishes, registration), or nil; the second result
-- says whether every candidate was looked at.
local function find_partner(a)
  if a.need_tag then
    local sizes, total = {}, 0
    for i, tag in ipairs(a.list) do
      sizes[i] = redis.call('ZCARD', K.interest(tag))
      total = total + sizes[i]
    end
    if total <= 1 then return nil, true end
    for _ = 1, SAMPLES do
      local r, i = math.random(total), 1
      while r > sizes[i] do
        r = r - sizes[i]
        i = i + 1
      end
      local rank = P.int(r - 1)
      local b = redis.call('ZRANGE', K.interest(a.list[i]), rank, rank)[1]
      local wb = b and wishes(b)
      if wb == false then
        redis.call('ZREM', K.interest(a.list[i]), b)
      elseif wb then
        -- A user in k of a's sets is drawn k times as often: keep it with
        -- probability 1/k, so every candidate is equally likely.
        local k = 0
        for _, tag in ipairs(a.list) do
          if wb.tags[tag] then k = k + 1 end
        end
        if (k <= 1 or math.random(k) == 1) and compatible(a, wb) then
          local rb = usable(b)
          if rb and not blocked(a.r, rb) then return wb, rb end
        end
      end
    end
    if total > ENUMERATE_MAX then return nil, false end
    local seen, list = {}, {}
    for _, tag in ipairs(a.list) do
      for _, b in ipairs(redis.call('ZRANGE', K.interest(tag), 0, -1)) do
        if not seen[b] then
          seen[b] = true
          list[#list + 1] = b
        end
      end
    end
    local wb, rb = pick_among(a, list)
    return wb, rb, true
  end
  if pool_size() < 2 then return nil, true end
  local n
  for _ = 1, SAMPLES do
    -- Users found unusable leave the pool meanwhile: their count is kept.
    n = pool_size()
    if n < 2 then return nil, true end
    local b = P.draw(pool, n)
    local wb = b and wishes(b)
    if not b then
      pool_n = nil -- (never expected: the count is exact) count again
    elseif wb and compatible(a, wb) then
      local rb = usable(wb.user)
      if rb and not blocked(a.r, rb) then return wb, rb end
    end
  end
  if n > ENUMERATE_MAX then return nil, false end
  local wb, rb = pick_among(a, redis.call('ZRANGE', pool, 0, -1))
  return wb, rb, true
end

-- What each gateway is told at the end of the run: gateway -> list of
-- { user, socket, notice (native users only) }.
local pushes, gateways = {}, {}

-- Store the notice for `user` and list it for the gateway holding its
-- socket (usable() read where that is; a socket elsewhere, or a later one,
-- takes the stored notice when it comes).
local function notify(user, r, code, initiator, peer, peer_name, common)
  local notice = {
    user = user, reg = r.reg, addr = r.addr, name = r.name, room = code,
    initiator = initiator, peer = peer, peer_name = peer_name,
    common = (#common > 0) and common or nil,
  }
  redis.call('SET', K.notice(user), cmsgpack.pack(notice), 'PX', notice_ttl_s)
  local push = { user = user, socket = r.socket }
  if V.is_legacy(user) then
    redis.call('PEXPIRE', K.binding(user), room_ttl_s)
  else
    push.notice = notice
  end
  local list = pushes[r.gateway]
  if not list then
    list = {}
    pushes[r.gateway] = list
    gateways[#gateways + 1] = r.gateway
  end
  list[#list + 1] = push
end

-- The user drawn from the fresh set for the pair being made.
local fresh_user = nil

-- The pairs made, flat: initiator, responder, ...
local made = {}

local function make_pair(a, ra, wa, b, rb, wb, ulid)
  local name_a, name_b = ra.name, rb.name
  local code = ulid
  if V.is_legacy(a) or V.is_legacy(b) then
    code = V.legacy_room_code(name_a, name_b, code)
  end
  local common = {}
  for _, tag in ipairs(wa.list) do
    if wb.tags[tag] then common[#common + 1] = tag end
  end
  -- The fresh user of the pair left the fresh set when it was drawn.
  leave(a, { has_prefs = wa.has_prefs, interests = wa.list, not_fresh = a == fresh_user })
  leave(b, { has_prefs = wb.has_prefs, interests = wb.list, not_fresh = b == fresh_user })
  known[a], known[b] = false, false
  redis.call('DEL', K.waiting(a), K.waiting(b))
  local room = K.room(code)
  redis.call('HSET', room, a, 'initiator', b, 'responder', 'name:' .. a, name_a, 'name:' .. b, name_b)
  redis.call('PEXPIRE', room, room_ttl_s)
  redis.call('SET', K.partner(a), V.partner(code, b), 'PX', room_ttl_s)
  redis.call('SET', K.partner(b), V.partner(code, a), 'PX', room_ttl_s)
  if last_ttl > 0 then
    redis.call('SET', K.last_partner(a), b, 'PX', last_ttl_s)
    redis.call('SET', K.last_partner(b), a, 'PX', last_ttl_s)
  end
  -- Whom each met, for a report or a block (register shortens it once the
  -- user asks for the next partner).
  redis.call('SET', K.met(a), cmsgpack.pack({
    room = code, peer = b, identity = rb.identity, address = rb.address,
  }), 'PX', room_ttl_s)
  redis.call('SET', K.met(b), cmsgpack.pack({
    room = code, peer = a, identity = ra.identity, address = ra.address,
  }), 'PX', room_ttl_s)
  notify(a, ra, code, true, b, name_b, common)
  notify(b, rb, code, false, a, name_a, common)
  made[#made + 1] = a
  made[#made + 1] = b
end

local next_ulid = first_ulid
-- Each try takes one user out of the fresh set, so a run ends.
for _ = 1, 4 * ulids do
  if next_ulid > last_ulid then break end
  if fresh_n <= 0 then break end
  local a = P.draw(K.pool_fresh, fresh_n)
  fresh_user = a
  if a then fresh_n = fresh_n - redis.call('ZREM', K.pool_fresh, a) end
  -- (never expected: the count is exact) count again
  if not a then fresh_n = redis.call('ZCARD', K.pool_fresh) end
  local wa = a and wishes(a, true)
  local ra = wa and usable(a)
  if ra then
    wa.r = ra
    local wb, rb, complete = find_partner(wa)
    if wb then
      -- The initiator is a fair coin: the fresh user is usually the one who
      -- came last, which must not decide who makes the WebRTC offer.
      if math.random(2) == 1 then
        make_pair(a, ra, wa, wb.user, rb, wb, ARGV[next_ulid])
      else
        make_pair(wb.user, rb, wb, a, ra, wa, ARGV[next_ulid])
      end
      next_ulid = next_ulid + 1
    else
      if not complete then P.retry_at(a, now + RETRY_MS) end
      if wa.last then P.rematch_at(a, now, waited(wa) or 0, rematch_after) end
    end
  end
end
for _, gateway in ipairs(gateways) do
  redis.call('PUBLISH', K.gateway_channel(gateway),
    cmsgpack.pack({ kind = 'matches', at_us = now_us, matches = pushes[gateway] }))
end
local result = { P.next_relax_in(now), fresh_n }
for _, user in ipairs(made) do result[#result + 1] = user end
return result
