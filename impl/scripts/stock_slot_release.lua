-- stock_slot_release: the end of a sharded-slots walk on one shard whose
-- keys share the shard's own hash tag (so one slot).
--
-- KEYS[1]  the shard's stock
-- KEYS[2]  the shard's holds hash (walk token -> units held)
-- KEYS[3]  the shard's purchases hash (id -> "<taken here>/<quantity>")
-- ARGV[1]  the walk's token
-- ARGV[2]  the purchase id, or '' for an anonymous deduction
-- ARGV[3]  '1' to refund, '0' to commit
--
-- Commit: drops the token's hold (the units stay taken) and returns 0.
-- Refund: gives the held units back to the shard, drops the hold and the
-- purchase's record on this shard, and returns the units given back (0
-- when nothing was held: a refund is idempotent).
local token = ARGV[1]
local id = ARGV[2]
local held = tonumber(redis.call('HGET', KEYS[2], token) or '0') or 0
redis.call('HDEL', KEYS[2], token)
if ARGV[3] ~= '1' then
  return 0
end
if held > 0 then
  redis.call('INCRBY', KEYS[1], held)
  if id ~= '' then
    redis.call('HDEL', KEYS[3], id)
  end
end
return held
