-- order_create: idempotent creation of one order, by its key.
--
-- KEYS[1]  the order hash (order:{<item>}:<id>)
-- ARGV[1]  order id        ARGV[2]  item
-- ARGV[3]  quantity, 1..MaxQuantity (validated by the caller)
-- ARGV[4]  amount in minor units, 0..MaxAmount (validated by the caller)
--
-- When the order does not exist, stores it in status created with the
-- server's time and returns {1, fields}. When it exists, changes nothing
-- and returns {0, fields} (fields as HGETALL), so a retried create gets the
-- order the first attempt made and never makes a second one; the caller
-- compares the stored quantity and amount with its own.
local qty = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
if not qty or qty <= 0 or not amount or amount < 0 then
  return redis.error_reply('ERR order_create: invalid quantity or amount')
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'item', ARGV[2], 'qty', ARGV[3], 'amount', ARGV[4],
  'status', 'created', 'created_ms', now, 'updated_ms', now)
return {1, redis.call('HGETALL', KEYS[1])}
