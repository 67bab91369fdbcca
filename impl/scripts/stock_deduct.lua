-- stock_deduct: check-and-deduct on one stock counter, atomically.
--
-- KEYS[1]  the stock key (a string holding an integer; missing means 0)
-- ARGV[1]  the quantity to take, 1..MaxQuantity (validated by the caller)
--
-- Returns {1, remaining} when the units were taken, {0, stock} when the
-- stock cannot cover the quantity (the key is left untouched).
local qty = tonumber(ARGV[1])
if not qty or qty <= 0 then
  return redis.error_reply('ERR stock_deduct: invalid quantity')
end
local raw = redis.call('GET', KEYS[1])
local stock = 0
if raw then
  stock = tonumber(raw)
  if not stock then
    return redis.error_reply('ERR stock_deduct: stock is not an integer')
  end
end
if stock < qty then
  return {0, stock}
end
return {1, redis.call('DECRBY', KEYS[1], qty)}
