-- order_get (after order_lib): read one order, returning its reservation
-- first when it is overdue (lazy expiry on read).
--
-- KEYS[1]  the order hash     KEYS[2]  the item's stock counter
-- KEYS[3]  the item's reservations (sorted set: order id -> deadline ms)
--
-- Returns {1, fields} (HGETALL, after any expiry) or {-1, {}} when the
-- order does not exist.
local id = redis.call('HGET', KEYS[1], 'id')
if not id then
  return {-1, {}}
end
release_if_overdue(KEYS[1], KEYS[2], KEYS[3], id, now_ms())
return {1, redis.call('HGETALL', KEYS[1])}
