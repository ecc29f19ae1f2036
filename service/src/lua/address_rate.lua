-- GCRA (generic cell rate algorithm) for one client address, shared by
-- every gateway and node: one key holding the theoretical arrival time
-- (TAT) in microseconds of Redis time, so that the nodes' clocks do not
-- matter. Allows `burst` requests at once, then one per `interval`.
--
-- KEYS[1]  the address's rate key (wire::keys::address_rate)
-- ARGV[1]  emission interval, microseconds (1e6 / rate)
-- ARGV[2]  burst (requests allowed at once)
-- ARGV[3]  cost of this request
-- Returns {1, 0} when allowed (and counted), {0, retry_after_us} when not
-- (nothing counted).
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat),
  'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
