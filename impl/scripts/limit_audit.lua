-- limit_audit: record one admission in a log sorted set, scored by server
-- time in microseconds. Scenarios judge limiters from this log.
--
-- KEYS[1]  the log
-- ARGV[1]  the member (unique per admission)
-- ARGV[2]  the time the limiter decided at (us), or '' to read TIME now
--
-- Returns the score used.
local t = ARGV[2]
if t == nil or t == '' then
  local now = redis.call('TIME')
  t = string.format('%d', tonumber(now[1]) * 1000000 + tonumber(now[2]))
elseif not tonumber(t) then
  return redis.error_reply('ERR limit_audit: time is not a number')
end
redis.call('ZADD', KEYS[1], t, ARGV[1])
return tonumber(t)
