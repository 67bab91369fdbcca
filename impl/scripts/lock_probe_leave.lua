-- Instrumentation of the lock-race scenario (not part of any lock): a
-- holder leaving its critical section, just before it releases the lock.
-- KEYS as lock_probe_enter.lua; ARGV[1] the holder id, ARGV[2] its lock
-- token, ARGV[3] "1" when tokens are unique per acquisition, "0" when
-- every holder writes the same token (the naive lock), "2" when tokens
-- are unique and the lease is the client-computed end the holder entered
-- with (Redlock: the lease spans several servers).
-- With unique tokens the lock itself says whose it is: the lease is live
-- (refreshed or not) exactly when the lock holds the holder's token, and
-- the lock belongs to another holder when it holds another token. With a
-- shared token only the probe's own records can tell: the lease ended when
-- the lease end recorded on entry has passed, and the lock belongs to
-- another holder when it exists and another holder entered after this one.
-- Counts 'left', 'expired_inside' (the lease ended while its holder was
-- inside) and 'releases_foreign' (the lock about to be released belongs to
-- another holder). Returns {1 if foreign else 0, 1 if expired else 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'left', 1)
local v = redis.call('GET', KEYS[4])
local expired, foreign
if ARGV[3] == '1' then
  expired = v ~= ARGV[2]
  foreign = v and v ~= ARGV[2]
elseif ARGV[3] == '2' then
  expired = deadline <= now
  foreign = v and v ~= ARGV[2]
else
  expired = deadline <= now
  foreign = v and redis.call('GET', KEYS[3]) ~= ARGV[1]
end
local out = {0, 0}
if foreign then
  out[1] = 1
  redis.call('HINCRBY', KEYS[2], 'releases_foreign', 1)
end
if expired then
  out[2] = 1
  redis.call('HINCRBY', KEYS[2], 'expired_inside', 1)
end
return out
