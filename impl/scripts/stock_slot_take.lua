-- stock_slot_take: one step of a sharded-slots walk, on one shard whose
-- keys share the shard's own hash tag (so one slot).
--
-- KEYS[1]  the shard's stock (a string holding an integer; missing is 0)
-- KEYS[2]  the shard's holds hash (walk token -> units held)
-- KEYS[3]  the shard's purchases hash (id -> "<taken here>/<quantity>")
-- ARGV[1]  need: the units the walk still needs, 1..qty
-- ARGV[2]  the walk's token
-- ARGV[3]  the purchase id, or '' for an anonymous deduction
-- ARGV[4]  qty: the whole purchase's quantity, 1..MaxQuantity
-- ARGV[5]  '1' to take need units or nothing (the walk's first pass), '0'
--          to take what the shard has, up to need
--
-- When the id is recorded on this shard, takes nothing and returns
-- {taken_before, stock, held_by_others, 1, recorded_qty}. Otherwise takes
-- t = min(need, stock) units (with ARGV[5] '1', none unless stock >= need); records id -> "t/qty" when t > 0 and an id
-- is given; holds t under the token unless the step took the whole
-- quantity at once (t == need == qty: nothing left to give back); and
-- returns {t, stock - t, held_by_others, 0, qty}.
local need = tonumber(ARGV[1])
local qty = tonumber(ARGV[4])
if not need or not qty or need <= 0 or qty <= 0 or need > qty then
  return redis.error_reply('ERR stock_slot_take: invalid quantity')
end
local token = ARGV[2]
local id = ARGV[3]
if not token or token == '' then
  return redis.error_reply('ERR stock_slot_take: missing walk token')
end
local raw = redis.call('GET', KEYS[1])
local stock = 0
if raw then
  stock = tonumber(raw)
  if not stock then
    return redis.error_reply('ERR stock_slot_take: shard is not an integer')
  end
end
local others = 0
local holds = redis.call('HGETALL', KEYS[2])
for i = 1, #holds, 2 do
  if holds[i] ~= token then
    others = others + (tonumber(holds[i + 1]) or 0)
  end
end
if id ~= '' then
  local rec = redis.call('HGET', KEYS[3], id)
  if rec then
    local slash = string.find(rec, '/', 1, true)
    local took = slash and tonumber(string.sub(rec, 1, slash - 1))
    local rq = slash and tonumber(string.sub(rec, slash + 1))
    if not took or not rq then
      return redis.error_reply('ERR stock_slot_take: purchase record is not taken/quantity')
    end
    return {took, stock, others, 1, rq}
  end
end
local t = math.min(need, stock)
if ARGV[5] == '1' and t < need then
  t = 0
end
if t > 0 then
  redis.call('DECRBY', KEYS[1], t)
  if id ~= '' then
    redis.call('HSET', KEYS[3], id, string.format('%d/%d', t, qty))
  end
  if t < need or need < qty then
    redis.call('HINCRBY', KEYS[2], token, t)
  end
end
return {t, stock - t, others, 0, qty}
