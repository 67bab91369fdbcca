-- cache_unlock: release a cache rebuild lock only if the caller still
-- holds it (the lock may have expired and been taken by another process).
--
-- KEYS[1]  the lock key (a string holding the holder's token)
-- ARGV[1]  the caller's token
--
-- Returns 1 when the lock was released, 0 when another holder (or no one)
-- has it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
