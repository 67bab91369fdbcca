-- cache_set: the versioned cache writes (impl.CacheWriteVersioned). Each
-- record has a version floor next to its entry: the newest version a
-- writer invalidated. A fill older than the floor or than the cached entry
-- is refused, so a reader that loaded an old record cannot put it back.
-- The floor outlives the entry (its own, longer TTL), so the protection
-- holds even when the entry expires while a slow load is in flight.
--
-- KEYS[1]  the cache entry (a hash: v version, d value, c load cost in
--          microseconds)
-- KEYS[2]  the record's version floor (a string holding an integer)
-- ARGV[1]  "fill" or "invalidate"
-- ARGV[2]  the version (an integer >= 0)
--
-- fill:       ARGV[3] the value, ARGV[4] the cost in microseconds,
--             ARGV[5] the entry's TTL in milliseconds (> 0).
--             Writes the entry unless the version is older than the floor
--             or than the cached entry (an equal version refreshes it).
--             Returns {1, version} when written, {0, newest} when refused.
-- invalidate: ARGV[3] the floor's TTL in milliseconds (> 0).
--             Raises the floor to the version (never lowers it) and
--             deletes the entry when it is older. Returns {1, floor}.
local v = tonumber(ARGV[2])
if not v or v < 0 then
  return redis.error_reply('ERR cache_set: invalid version')
end
local floor = 0
local raw = redis.call('GET', KEYS[2])
if raw then
  floor = tonumber(raw)
  if not floor then
    return redis.error_reply('ERR cache_set: version floor is not an integer')
  end
end
local cached = nil
raw = redis.call('HGET', KEYS[1], 'v')
if raw then
  cached = tonumber(raw)
  if not cached then
    return redis.error_reply('ERR cache_set: cached version is not an integer')
  end
end

if ARGV[1] == 'invalidate' then
  local ttl = tonumber(ARGV[3])
  if not ttl or ttl <= 0 then
    return redis.error_reply('ERR cache_set: invalid floor ttl')
  end
  if v > floor then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
    floor = v
  end
  if cached and cached < v then
    redis.call('DEL', KEYS[1])
  end
  return {1, floor}
end

if ARGV[1] ~= 'fill' then
  return redis.error_reply('ERR cache_set: mode must be fill or invalidate')
end
local ttl = tonumber(ARGV[5])
if not ttl or ttl <= 0 then
  return redis.error_reply('ERR cache_set: invalid ttl')
end
if v < floor or (cached and v < cached) then
  return {0, math.max(floor, cached or 0)}
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'c', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, v}
