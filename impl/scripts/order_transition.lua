-- order_transition (after order_lib): compare-and-set one order along the
-- state machine and apply the move's side effects, all in one script.
--
-- KEYS[1]  the order hash              KEYS[2]  the item's stock counter
-- KEYS[3]  the item's reservations     KEYS[4]  the item's ledger (stream)
--          (sorted set: order id -> deadline in server ms)
-- ARGV[1]  the target status
-- ARGV[2]  the reservation TTL in milliseconds (for created -> processing)
--
-- All four keys share the item's hash tag. Returns {code, fields, stock,
-- overdue}: fields is the order's HGETALL after the call; stock and
-- overdue (reservations past their deadline) are filled for code -3.
--   1  applied                       0  already in the target status
--  -1  no such order                -2  illegal move (fields hold the status)
--  -3  out of stock (order unchanged)
--  -4  its reservation had expired: the order is now cancelled
--
-- Moves and their side effects:
--   created    -> processing  take qty from stock, reserve until now+TTL
--   processing -> paid        drop the reservation (it is a sale now),
--                             ledger capture of the amount
--   paid       -> completed   none
--   created    -> cancelled   none (nothing was reserved)
--   processing -> cancelled   drop the reservation, qty back to stock
--   paid       -> refunded    ledger refund of the amount, qty back to stock
local legal = {
  created    = {processing = true, cancelled = true},
  processing = {paid = true, cancelled = true},
  paid       = {completed = true, refunded = true},
}
local order, stock, reservations, ledger = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local to = ARGV[1]
local ttl = tonumber(ARGV[2])
if not ttl or ttl <= 0 then
  return redis.error_reply('ERR order_transition: invalid TTL')
end

local f = redis.call('HMGET', order, 'id', 'status', 'qty', 'amount')
local id, status, qty, amount = f[1], f[2], tonumber(f[3]), f[4]
if not id then
  return {-1, {}, 0, 0}
end
if not qty then
  return redis.error_reply('ERR order_transition: order has no integer qty')
end
local now = now_ms()
local expired = false
if status == 'processing' and release_if_overdue(order, stock, reservations, id, now) > 0 then
  status = 'cancelled'
  expired = true
end
if status == to then
  return {0, redis.call('HGETALL', order), 0, 0}
end
if not (legal[status] and legal[status][to]) then
  if expired then
    return {-4, redis.call('HGETALL', order), 0, 0}
  end
  return {-2, redis.call('HGETALL', order), 0, 0}
end

if to == 'processing' then
  local have = stock_of(stock)
  if not have then
    return redis.error_reply('ERR order_transition: stock is not an integer')
  end
  if have < qty then
    local overdue = redis.call('ZCOUNT', reservations, '-inf', now)
    return {-3, redis.call('HGETALL', order), have, overdue}
  end
  local deadline = now + ttl
  redis.call('DECRBY', stock, qty)
  redis.call('ZADD', reservations, deadline, id)
  redis.call('HSET', order, 'status', to, 'reserved_until_ms', deadline, 'updated_ms', now)
elseif to == 'paid' then
  redis.call('ZREM', reservations, id)
  redis.call('XADD', ledger, '*', 'order', id, 'kind', 'capture', 'amount', amount, 'qty', qty)
  redis.call('HSET', order, 'status', to, 'updated_ms', now)
elseif to == 'cancelled' then
  if status == 'processing' then
    redis.call('ZREM', reservations, id)
    redis.call('INCRBY', stock, qty)
  end
  redis.call('HSET', order, 'status', to, 'cancel_reason', 'requested', 'updated_ms', now)
elseif to == 'refunded' then
  redis.call('XADD', ledger, '*', 'order', id, 'kind', 'refund', 'amount', amount, 'qty', qty)
  redis.call('INCRBY', stock, qty)
  redis.call('HSET', order, 'status', to, 'updated_ms', now)
else -- completed
  redis.call('HSET', order, 'status', to, 'updated_ms', now)
end
return {1, redis.call('HGETALL', order), 0, 0}
