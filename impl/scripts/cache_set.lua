-- cache_set: the versioned cache write. It stores an entry unless the
-- cached one is newer, so a reader that loaded an old record cannot put it
-- back over a newer version or over a writer's tombstone.
--
-- KEYS[1]  the cache entry (a hash: v version, d value, c load cost in
--          microseconds, t "1" for a tombstone)
-- ARGV[1]  the entry's version (an integer >= 0)
-- ARGV[2]  the value ("" for a tombstone)
-- ARGV[3]  the cost of the load that produced the value, in microseconds
-- ARGV[4]  the TTL in milliseconds (> 0)
-- ARGV[5]  "1" for a tombstone (an invalidation carrying the new version),
--          "0" for a value
--
-- The entry is written when the key is missing, when the cached version
-- is older, or when it is the same version and ARGV is a value (it fills a
-- tombstone or refreshes the TTL). An older version, or a tombstone for a
-- version already cached, is refused and the key left untouched.
--
-- Returns {1, version} when written, {0, cached_version} when refused.
local v = tonumber(ARGV[1])
local ttl = tonumber(ARGV[4])
if not v or v < 0 then
  return redis.error_reply('ERR cache_set: invalid version')
end
if not ttl or ttl <= 0 then
  return redis.error_reply('ERR cache_set: invalid ttl')
end
local tomb = ARGV[5] == '1'
local raw = redis.call('HGET', KEYS[1], 'v')
if raw then
  local cached = tonumber(raw)
  if not cached then
    return redis.error_reply('ERR cache_set: cached version is not an integer')
  end
  if v < cached or (v == cached and tomb) then
    return {0, cached}
  end
end
local t = '0'
if tomb then
  t = '1'
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2], 'c', ARGV[3], 't', t)
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, v}
