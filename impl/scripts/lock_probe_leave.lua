-- Instrumentation of the lock-race scenario (not part of any lock): a
-- holder leaving its critical section, just before it releases the lock.
-- KEYS as lock_probe_enter.lua; ARGV[1] the holder id, ARGV[2] its lock
-- token, ARGV[3] "1" when tokens are unique per acquisition (the lock
-- holding the token then proves the lease live, refreshed or not), "0"
-- when every holder writes the same token (the naive lock: the lease end
-- recorded on entry is all there is).
-- Counts 'left'; 'expired_inside' when the holder's lease ended while it
-- was inside; and 'releases_foreign' when the lock it is about to release
-- is held by another holder: the lock holds another token, or (the naive
-- lock, whose token is the same for everyone) another holder entered
-- after this one. Returns {1 if foreign else 0, 1 if expired else 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'left', 1)
local v = redis.call('GET', KEYS[4])
local expired = 0
if (ARGV[3] == '1' and v ~= ARGV[2]) or (ARGV[3] ~= '1' and deadline <= now) then
  expired = 1
  redis.call('HINCRBY', KEYS[2], 'expired_inside', 1)
end
local foreign = 0
if v and (v ~= ARGV[2] or redis.call('GET', KEYS[3]) ~= ARGV[1]) then
  foreign = 1
  redis.call('HINCRBY', KEYS[2], 'releases_foreign', 1)
end
return {foreign, expired}
