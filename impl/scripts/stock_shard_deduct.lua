-- stock_shard_deduct: check-and-deduct on one shard of a sharded stock.
--
-- KEYS[1]     the chosen shard (a string holding an integer; missing means 0)
-- KEYS[2..n]  the item's other shards, only read to report the total
--             (all shards share one hash tag, hence one slot)
-- ARGV[1]     the quantity to take, 1..MaxQuantity (validated by the caller)
--
-- Takes the quantity from KEYS[1] alone, and only if that shard covers it.
-- Returns {1, remaining_total} when taken, {0, total} when the chosen shard
-- cannot serve; the caller may then try stock_sharded_deduct_all, which
-- succeeds whenever the total covers the quantity.
local qty = tonumber(ARGV[1])
if not qty or qty <= 0 then
  return redis.error_reply('ERR stock_shard_deduct: invalid quantity')
end
local vals = redis.call('MGET', unpack(KEYS))
local total = 0
for i = 1, #KEYS do
  local v = 0
  if vals[i] then
    v = tonumber(vals[i])
    if not v then
      return redis.error_reply('ERR stock_shard_deduct: shard is not an integer')
    end
  end
  vals[i] = v
  total = total + v
end
if vals[1] < qty then
  return {0, total}
end
redis.call('DECRBY', KEYS[1], qty)
return {1, total - qty}
