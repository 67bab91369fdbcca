-- stock_purchase_plain: an identified check-and-deduct on one stock counter
-- as people usually write it: the deduction and its record in one atomic
-- step, but NOT idempotent — the id is not looked up first, so the same
-- purchase sent twice deducts twice (and overwrites its one record: the
-- stock falls by more than the recorded units).
--
-- KEYS[1]  the stock key (a string holding an integer; missing means 0)
-- KEYS[2]  the item's purchases hash (field: purchase id, value: units)
-- ARGV[1]  the quantity to take, 1..MaxQuantity (validated by the caller)
-- ARGV[2]  the purchase id (validated by the caller)
--
-- Returns {1, remaining, 0} when the units were taken (and id -> qty
-- recorded), {0, stock, 0} when the stock cannot cover the quantity
-- (nothing changes, nothing is recorded). It never answers a replay.
local qty = tonumber(ARGV[1])
if not qty or qty <= 0 then
  return redis.error_reply('ERR stock_purchase_plain: invalid quantity')
end
local id = ARGV[2]
if not id or id == '' then
  return redis.error_reply('ERR stock_purchase_plain: missing purchase id')
end
local raw = redis.call('GET', KEYS[1])
local stock = 0
if raw then
  stock = tonumber(raw)
  if not stock then
    return redis.error_reply('ERR stock_purchase_plain: stock is not an integer')
  end
end
if stock < qty then
  return {0, stock, 0}
end
local remaining = redis.call('DECRBY', KEYS[1], qty)
redis.call('HSET', KEYS[2], id, qty)
return {1, remaining, 0}
