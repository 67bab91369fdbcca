-- order_lib: helpers shared by the order scripts. Go prepends this file to
-- order_transition.lua, order_get.lua and order_release.lua (see order.go),
-- so every script that can see an overdue reservation returns it the same
-- way. It declares locals only and runs no command by itself.

-- now_ms returns the server's clock in milliseconds (TIME), never the
-- client's: every deadline is set and checked on the same clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- stock_of reads a stock counter; missing is 0, anything but an integer is
-- an error the caller returns.
local function stock_of(key)
  local raw = redis.call('GET', key)
  if not raw then
    return 0
  end
  return tonumber(raw)
end

-- release_if_overdue returns the units of order id's reservation to stock
-- when its deadline has passed, and cancels the order (reason expired).
-- It answers the units returned, 0 when there was nothing to return. A
-- reservation whose order is no longer processing is only removed (the
-- scripts never leave one behind, but the set must not grow on a stale
-- member).
local function release_if_overdue(order, stock, reservations, id, now)
  local deadline = redis.call('ZSCORE', reservations, id)
  if not deadline or tonumber(deadline) > now then
    return 0
  end
  redis.call('ZREM', reservations, id)
  local f = redis.call('HMGET', order, 'status', 'qty')
  if f[1] ~= 'processing' then
    return 0
  end
  local qty = tonumber(f[2])
  redis.call('INCRBY', stock, qty)
  redis.call('HSET', order, 'status', 'cancelled', 'cancel_reason', 'expired', 'updated_ms', now)
  return qty
end
