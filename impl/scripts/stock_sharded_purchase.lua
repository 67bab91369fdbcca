-- stock_sharded_purchase: an identified check-and-deduct across the shards
-- of a sharded stock: the deduction and its record in one atomic step,
-- idempotent on the id.
--
-- KEYS[1]     the item's purchases hash (field: purchase id, value: units)
-- KEYS[2..n]  all shards of the item, the chosen shard first, then the
--             others in the order to take from (all keys share one hash
--             tag, hence one slot); missing shards count as 0
-- ARGV[1]     the quantity to take, 1..MaxQuantity (validated by the caller)
-- ARGV[2]     the purchase id (validated by the caller)
--
-- If the shards together hold at least the quantity, takes it from the
-- chosen shard when that shard covers it alone, else from the chosen shard
-- first, then the next ones (never from a shard below 1), records
-- id -> qty, and returns {1, remaining_total, 0}; otherwise changes nothing
-- and returns {0, total, 0}. When the id was already recorded it takes
-- nothing and returns {1, total, 1}.
local qty = tonumber(ARGV[1])
if not qty or qty <= 0 then
  return redis.error_reply('ERR stock_sharded_purchase: invalid quantity')
end
local id = ARGV[2]
if not id or id == '' then
  return redis.error_reply('ERR stock_sharded_purchase: missing purchase id')
end
local shards = {}
for i = 2, #KEYS do
  shards[#shards + 1] = KEYS[i]
end
local vals = redis.call('MGET', unpack(shards))
local total = 0
for i = 1, #shards do
  local v = 0
  if vals[i] then
    v = tonumber(vals[i])
    if not v then
      return redis.error_reply('ERR stock_sharded_purchase: shard is not an integer')
    end
  end
  vals[i] = v
  total = total + v
end
if redis.call('HEXISTS', KEYS[1], id) == 1 then
  return {1, total, 1}
end
if total < qty then
  return {0, total, 0}
end
-- The shards above 0 hold at least total >= qty, so this takes it all.
local need = qty
for i = 1, #shards do
  if need == 0 then
    break
  end
  local take = math.min(need, vals[i])
  if take > 0 then
    redis.call('DECRBY', shards[i], take)
    need = need - take
  end
end
redis.call('HSET', KEYS[1], id, qty)
return {1, total - qty, 0}
