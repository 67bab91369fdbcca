-- Compare-and-pexpire: the token and fenced locks' refresh.
-- KEYS[1] is the lock key, ARGV[1] the holder's token, ARGV[2] the lease
-- in milliseconds. Extends the lease only if the lock still holds the
-- token; returns 1 when it did, 0 when the lock is gone or belongs to
-- another holder.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
