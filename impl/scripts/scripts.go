// Package scripts holds paybench's Lua scripts, one .lua file each,
// embedded at build time and exported as strings. Every backend wraps the
// same source in its library's script type (go-redis redis.NewScript,
// rueidis rueidis.NewLuaScript, both EVALSHA with an EVAL fallback), so both
// run byte-identical Lua. Every key a script touches is passed in KEYS, so
// the scripts run unchanged on Redis Cluster when their keys share a hash
// tag.
//
// The stock scripts take quantities already validated
// (impl.ValidateQuantity) but still refuse a non-positive one, and answer
// with an error reply when a key holds something other than an integer.
package scripts

import _ "embed"

// StockDeduct is the check-and-deduct of the lua stock strategy.
// KEYS[1] is the stock key and ARGV[1] the quantity; it returns
// {1, remaining} when the units were taken and {0, stock} otherwise.
//
//go:embed stock_deduct.lua
var StockDeduct string

// StockShardDeduct is the fast path of the sharded stock strategy: KEYS[1]
// is the chosen shard, KEYS[2..] the item's other shards (read only to
// report the total), ARGV[1] the quantity. It takes the quantity from the
// chosen shard only if that shard alone covers it, and returns
// {1, remaining_total} or {0, total}.
//
//go:embed stock_shard_deduct.lua
var StockShardDeduct string

// StockShardedDeductAll is the fallback of the sharded stock strategy:
// KEYS are all of the item's shards in the order to take from, ARGV[1] the
// quantity. If the shards together cover the quantity it takes it, first
// shard first, and returns {1, remaining_total}; otherwise it changes
// nothing and returns {0, total}.
//
//go:embed stock_sharded_deduct_all.lua
var StockShardedDeductAll string

// StockPurchase is the identified check-and-deduct of the idempotent stock
// strategy (Stock.Purchase): KEYS[1] is the stock key, KEYS[2] the item's
// purchases hash, ARGV[1] the quantity and ARGV[2] the purchase id. It
// looks the id up first, takes the units and records id -> qty in one
// step, and returns {1, remaining, 0}, {0, stock, 0} when refused, or
// {1, stock, 1} when the id was already recorded (nothing taken again).
//
//go:embed stock_purchase.lua
var StockPurchase string

// StockPurchasePlain is the identified check-and-deduct of the lua stock
// strategy, as people usually write it: the same keys and arguments as
// StockPurchase, the deduction and its record in one step, but the id is
// not looked up first, so a purchase sent twice deducts twice (its record
// is overwritten, not added to). It returns {1, remaining, 0} or
// {0, stock, 0} when refused; never a replay.
//
//go:embed stock_purchase_plain.lua
var StockPurchasePlain string

// StockShardedPurchase is the identified check-and-deduct of the sharded
// stock strategy: KEYS[1] is the item's purchases hash, KEYS[2..] its
// shards, the chosen one first; ARGV[1] the quantity and ARGV[2] the
// purchase id. It takes the units from the chosen shard when it covers
// them alone, else from the chosen shard and the next ones, records
// id -> qty, and returns {1, remaining_total, 0}, {0, total, 0} when the
// shards together cannot cover them, or {1, total, 1} when the id was
// already recorded (nothing taken again).
//
//go:embed stock_sharded_purchase.lua
var StockShardedPurchase string

// StockSlotTake is one step of the sharded-slots stock strategy's walk, on
// one shard (its stock, holds and purchases keys share the shard's hash
// tag): it takes up to ARGV[1] units (with ARGV[5] '1', all of them or
// none), records and holds them as the purchase requires, and answers
// {taken, left, held_by_others, replayed, qty} (see impl.SlotWalk).
//
//go:embed stock_slot_take.lua
var StockSlotTake string

// StockSlotRelease ends a sharded-slots walk on one shard: a commit drops
// the walk's hold, a refund gives the held units back and drops the
// purchase's record there; it answers the units given back.
//
//go:embed stock_slot_release.lua
var StockSlotRelease string
