-- Compare-and-delete: the token and fenced locks' release.
-- KEYS[1] is the lock key, ARGV[1] the holder's token.
-- Deletes the lock only if it still holds the token; returns 1 when it
-- did, 0 when the lock is gone or belongs to another holder.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
