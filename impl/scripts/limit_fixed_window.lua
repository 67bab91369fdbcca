-- limit_fixed_window: the fixed-window limiter, atomically.
--
-- Windows are aligned to the clock: window w covers [w*period, (w+1)*period)
-- microseconds of server time. Each window has its own counter,
-- KEYS[1] .. ':' .. w (same hash tag as KEYS[1], so the same Cluster slot),
-- created by INCRBY; its expiry is set only then, when the window starts,
-- to the window's end (plus a clean-up margin). A refused request does not
-- touch the counter.
--
-- KEYS[1]  the prefix of the window counters (impl.LimitKey)
-- ARGV     limit, period (us), burst (unused), n, now (us; '' = server TIME)
--
-- Returns {allowed, remaining, retry_after_us (-1: never), now_us}.
local limit, period, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
if not limit or limit <= 0 or not period or period <= 0 or not n or n <= 0 then
  return redis.error_reply('ERR limit_fixed_window: invalid arguments')
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

local w = math.floor(now / period)
local window_end = (w + 1) * period
local key = KEYS[1] .. ':' .. string.format('%d', w)
local raw = redis.call('GET', key)
local count = 0
if raw then
  count = tonumber(raw)
  if not count then
    return redis.error_reply('ERR limit_fixed_window: counter is not an integer')
  end
end
if n > limit then
  return {0, limit - count, -1, now}
end
if count + n > limit then
  return {0, limit - count, window_end - now, now}
end
count = redis.call('INCRBY', key, n)
if count == n then
  redis.call('PEXPIRE', key, math.ceil((window_end - now) / 1000) + margin)
end
return {1, limit - count, 0, now}
