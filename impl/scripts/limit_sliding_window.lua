-- limit_sliding_window: the two-window weighted counter, atomically.
--
-- Windows are aligned to the clock (window w covers [w*period,
-- (w+1)*period) microseconds). The hash KEYS[1] holds w (the current
-- window), cur (its count) and prev (the count of window w-1). A request at
-- elapsed microseconds into the window is admitted when
--
--   prev * (period - elapsed) / period + cur + n <= limit
--
-- i.e. the previous window counts in proportion to how much of it the
-- sliding window (now - period, now] still covers. The test is done on
-- integers (multiplied by period), exact below 2^53. A refused request
-- changes nothing.
--
-- KEYS[1]  the hash (impl.LimitKey)
-- ARGV     limit, period (us), burst (unused), n, now (us; '' = server TIME)
--
-- Returns {allowed, remaining, retry_after_us (-1: never), now_us}.
local limit, period, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
if not limit or limit <= 0 or not period or period <= 0 or not n or n <= 0 then
  return redis.error_reply('ERR limit_sliding_window: invalid arguments')
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
local w = math.floor(now / period)
local elapsed = now - w * period
local h = redis.call('HMGET', key, 'w', 'cur', 'prev')
local sw, cur, prev = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
if not sw or sw < w - 1 then
  cur, prev = 0, 0         -- no state, or both windows are over
elseif sw == w - 1 then
  prev = cur               -- the stored window became the previous one
  cur = 0
end                        -- sw >= w: this window (or a clock step back)

-- everything below is the weighted count times period
local function used(c) return prev * (period - elapsed) + c * period end
local function remaining(c) return math.floor((limit * period - used(c)) / period) end

if n > limit then
  return {0, remaining(cur), -1, now}
end
if used(cur + n) > limit * period then
  local retry
  if cur + n <= limit then
    -- later in this window, once prev * (period - e) <= (limit - cur - n) * period
    retry = period - math.floor((limit - cur - n) * period / prev) - elapsed
  else
    -- in the next window, where prev becomes cur:
    -- cur * (period - e) <= (limit - n) * period
    retry = period - elapsed + period - math.floor((limit - n) * period / cur)
  end
  return {0, remaining(cur), math.max(retry, 1), now}
end
cur = cur + n
redis.call('HSET', key, 'w', string.format('%d', math.max(w, sw or w)), 'cur', cur, 'prev', prev)
redis.call('PEXPIRE', key, math.ceil((2 * period - elapsed) / 1000) + margin)
return {1, remaining(cur), 0, now}
