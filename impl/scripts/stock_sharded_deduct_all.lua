-- stock_sharded_deduct_all: check-and-deduct across every shard of a
-- sharded stock, so that no sellable unit is stranded on a shard too small
-- to serve a purchase alone.
--
-- KEYS[1..n]  all shards of the item, in the order to take from (all share
--             one hash tag, hence one slot); missing shards count as 0
-- ARGV[1]     the quantity to take, 1..MaxQuantity (validated by the caller)
--
-- If the shards together hold at least the quantity, takes it from KEYS[1]
-- first, then KEYS[2], ..., and returns {1, remaining_total}; otherwise
-- changes nothing and returns {0, total}.
local qty = tonumber(ARGV[1])
if not qty or qty <= 0 then
  return redis.error_reply('ERR stock_sharded_deduct_all: invalid quantity')
end
local vals = redis.call('MGET', unpack(KEYS))
local total = 0
for i = 1, #KEYS do
  local v = 0
  if vals[i] then
    v = tonumber(vals[i])
    if not v then
      return redis.error_reply('ERR stock_sharded_deduct_all: shard is not an integer')
    end
  end
  vals[i] = v
  total = total + v
end
if total < qty then
  return {0, total}
end
local need = qty
for i = 1, #KEYS do
  if need == 0 then
    break
  end
  local take = math.min(need, vals[i])
  if take > 0 then
    redis.call('DECRBY', KEYS[i], take)
    need = need - take
  end
end
return {1, total - qty}
