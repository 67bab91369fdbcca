-- The protected resource's fencing check and write.
-- KEYS[1] is the resource hash, KEYS[2] its log; ARGV[1] the writer's
-- fencing token, ARGV[2] the value, ARGV[3] how many log entries to keep.
-- A token older than the newest one accepted is rejected (the hash's
-- 'rejected' count goes up, nothing else changes) and {0, newest} is
-- returned. Otherwise the value and token are stored, 'writes' goes up,
-- "<token>:<value>" is appended to the log, and {1, token} is returned.
-- An equal token is accepted: one holder may write several times.
local fence = tonumber(ARGV[1])
if not fence or fence < 1 or fence ~= math.floor(fence) then
  return redis.error_reply('ERR fencing token must be a positive integer')
end
local newest = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if not newest then
  return redis.error_reply('ERR resource fence is not an integer')
end
if fence < newest then
  redis.call('HINCRBY', KEYS[1], 'rejected', 1)
  return {0, newest}
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'writes', 1)
redis.call('RPUSH', KEYS[2], ARGV[1] .. ':' .. ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
return {1, fence}
