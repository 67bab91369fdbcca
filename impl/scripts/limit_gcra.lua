-- limit_gcra: the generic cell rate algorithm, atomically (as redis-cell
-- and go-redis/redis_rate).
--
-- The key holds the theoretical arrival time (TAT) in microseconds: when
-- the key would be back to empty. Each unit costs one emission interval
-- T = ceil(period / limit) (whole microseconds, so everything is an exact
-- integer and the sustained rate never exceeds limit per period). A
-- request of n units at now is admitted when
--
--   max(TAT, now) + n*T - burst*T <= now
--
-- so an idle key takes burst units at once, then one every T. In any
-- interval of d microseconds at most burst + d/T units are admitted. A
-- refused request changes nothing.
--
-- KEYS[1]  the TAT (impl.LimitKey)
-- ARGV     limit, period (us), burst, n, now (us; '' = server TIME)
--
-- Returns {allowed, remaining, retry_after_us (-1: never), now_us}.
local limit, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local burst, n = tonumber(ARGV[3]), tonumber(ARGV[4])
if not limit or limit <= 0 or not period or period <= 0 or not burst or burst <= 0 or not n or n <= 0 then
  return redis.error_reply('ERR limit_gcra: invalid arguments')
end
-- The expiry only cleans up; no decision depends on it. With a caller's
-- clock (tests) the server's clock runs on its own, so keep keys longer.
local now, margin
if ARGV[5] ~= nil and ARGV[5] ~= '' then
  now, margin = tonumber(ARGV[5]), 60000
else
  local t = redis.call('TIME')
  now, margin = tonumber(t[1]) * 1000000 + tonumber(t[2]), 1000
end

local key = KEYS[1]
local interval = math.ceil(period / limit)
local tat = now
local raw = redis.call('GET', key)
if raw then
  tat = tonumber(raw)
  if not tat then
    return redis.error_reply('ERR limit_gcra: TAT is not an integer')
  end
  tat = math.max(tat, now)
end
local new_tat = tat + n * interval
local diff = now - (new_tat - burst * interval)
if diff < 0 then
  local free = math.floor((now - tat + burst * interval) / interval)
  if n > burst then
    return {0, free, -1, now}
  end
  return {0, free, -diff, now}
end
redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + margin)
return {1, math.floor(diff / interval), 0, now}
