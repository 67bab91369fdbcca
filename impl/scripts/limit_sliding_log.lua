-- limit_sliding_log: the sliding-log limiter, atomically.
--
-- One sorted-set entry per admitted unit, scored by server time in
-- microseconds. Each call first trims the entries that left the sliding
-- window (score <= now - period, so the window is (now - period, now]),
-- then counts the rest: exact over every window, memory proportional to the
-- limit. A refused request adds nothing.
--
-- Members are '<now>-<k>' where k is the set's size after the entry was
-- added: entries added at the same microsecond all stay in the window, so k
-- grows between them and members never collide.
--
-- KEYS[1]  the log (impl.LimitKey)
-- ARGV     limit, period (us), burst (unused), n, now (us; '' = server TIME)
--
-- Returns {allowed, remaining, retry_after_us (-1: never), now_us}.
local limit, period, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
if not limit or limit <= 0 or not period or period <= 0 or not n or n <= 0 then
  return redis.error_reply('ERR limit_sliding_log: invalid arguments')
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
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - period))
local count = redis.call('ZCARD', key)
if n > limit then
  return {0, limit - count, -1, now}
end
if count + n > limit then
  -- The request fits once the (count + n - limit) oldest entries have left:
  -- an entry scored s leaves when now - period >= s.
  local e = redis.call('ZRANGE', key, count + n - limit - 1, count + n - limit - 1, 'WITHSCORES')
  return {0, limit - count, tonumber(e[2]) + period - now, now}
end
local args = {}
local score = string.format('%d', now)
for i = 1, n do
  args[#args + 1] = score
  args[#args + 1] = score .. '-' .. string.format('%d', count + i)
end
redis.call('ZADD', key, unpack(args))
redis.call('PEXPIRE', key, math.ceil(period / 1000) + margin)
return {1, limit - count - n, 0, now}
