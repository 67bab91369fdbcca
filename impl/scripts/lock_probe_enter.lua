-- Instrumentation of the lock-race scenario (not part of any lock): a
-- holder entering its critical section. Server clock only.
-- KEYS[1] the "inside" sorted set (member: holder id, score: the server
-- time in ms its lease ends), KEYS[2] the stats hash, KEYS[3] the "owner"
-- string (id of the last holder to enter), KEYS[4] the lock key.
-- ARGV[1] the holder id, ARGV[2] its lock token, ARGV[3] (optional) the
-- lease's end in Unix ms as the lock's client computed it, for a lock
-- whose lease is not one key's expiry on this server (Redlock).
-- The lease end is the lock's PEXPIRETIME when the lock holds the token
-- (the very instant the server will let another holder in), else now (the
-- lease is already gone). Counts 'entered', 'overlaps' (someone else was
-- inside), 'live_overlaps' (someone else was inside on a lease that had
-- not ended, and so are we) and keeps 'max_inside'.
-- Returns {inside now, others inside on live leases, ms left on our lease}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now
if ARGV[3] and ARGV[3] ~= '' then
  -- The lease's validity as the client computed it (redsync over several
  -- servers: no one key's expiry is the lease), in ms on the same clock.
  local at = tonumber(ARGV[3])
  if at > now then
    deadline = at
  end
elseif redis.call('GET', KEYS[4]) == ARGV[2] then
  local at = redis.call('PEXPIRETIME', KEYS[4])
  if at > now then
    deadline = at
  end
end
local others = redis.call('ZCARD', KEYS[1])
local live = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
redis.call('ZADD', KEYS[1], deadline, ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'entered', 1)
if others > 0 then
  redis.call('HINCRBY', KEYS[2], 'overlaps', 1)
  if live > 0 and deadline > now then
    redis.call('HINCRBY', KEYS[2], 'live_overlaps', 1)
  end
end
local inside = others + 1
if inside > tonumber(redis.call('HGET', KEYS[2], 'max_inside') or '0') then
  redis.call('HSET', KEYS[2], 'max_inside', inside)
end
return {inside, live, deadline - now}
