-- The fenced lock's acquire: SET NX PX and, only when that took the lock,
-- INCR the lock's fence counter, in one step, so fencing tokens are issued
-- in the order the lock was taken.
-- KEYS[1] is the lock key, KEYS[2] its fence counter; ARGV[1] the token,
-- ARGV[2] the lease in milliseconds. Returns the new fencing token (>= 1),
-- or 0 when the lock is held.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
