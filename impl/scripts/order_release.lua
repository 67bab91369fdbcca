-- order_release (after order_lib): return overdue reservations of one item
-- to stock, and report the item's stock (lazy expiry on read).
--
-- KEYS[1]     the item's stock counter
-- KEYS[2]     the item's reservations (sorted set: order id -> deadline ms)
-- KEYS[3..n]  candidate order hashes: the caller read the earliest
--             deadlines with ZRANGE; the script checks each again, so a
--             candidate paid or cancelled in between is left alone
-- ARGV[1..]   the candidates' order ids, in the order of KEYS[3..n]
--
-- Returns {released, released_units, stock, reservations_left,
-- overdue_left}.
local stock, reservations = KEYS[1], KEYS[2]
if #ARGV ~= #KEYS - 2 then
  return redis.error_reply('ERR order_release: one order id per candidate key')
end
local now = now_ms()
local released, units = 0, 0
for i = 3, #KEYS do
  local n = release_if_overdue(KEYS[i], stock, reservations, ARGV[i - 2], now)
  if n > 0 then
    released = released + 1
    units = units + n
  end
end
local have = stock_of(stock)
if not have then
  return redis.error_reply('ERR order_release: stock is not an integer')
end
return {released, units, have, redis.call('ZCARD', reservations),
  redis.call('ZCOUNT', reservations, '-inf', now)}
