package impl

import (
	"context"
	"fmt"
	"time"
)

// Stock strategies.
const (
	// StockNaive is the seed's reduce_stock: GET, compare, SET.
	StockNaive = "naive"
	// StockDecr is DECRBY, then INCRBY back when the result went negative.
	StockDecr = "decr"
	// StockWatch is WATCH/MULTI/EXEC with bounded retries.
	StockWatch = "watch"
	// StockLua is one check-and-deduct script (EVALSHA, EVAL fallback), as
	// people usually write it: a purchase is recorded in the same script,
	// but its id is not looked up first, so a re-sent purchase deducts
	// again.
	StockLua = "lua"
	// StockIdempotent is the lua script made idempotent: a purchase's id is
	// looked up first, and a recorded one is answered from its record
	// (Replayed), nothing taken again.
	StockIdempotent = "idempotent"
	// StockSharded splits the stock over several hash-tagged sub-keys.
	StockSharded = "sharded"
	// StockShardedSlots splits the stock over shards that each have a hash
	// tag, and so a cluster slot, of their own (impl.SlotShards): on a
	// Redis Cluster they live on different masters. No script can touch
	// two of them, so a deduction walks them one at a time (impl.SlotWalk).
	StockShardedSlots = "sharded-slots"
)

// StockStrategies lists the stock strategies in display order.
func StockStrategies() []string {
	return []string{StockNaive, StockDecr, StockWatch, StockLua, StockIdempotent, StockSharded, StockShardedSlots}
}

// MaxQuantity is the largest quantity one deduction or restore may ask for.
const MaxQuantity = 1_000_000

// ValidateQuantity returns an error wrapping ErrInvalidQuantity unless
// 0 < q <= MaxQuantity.
func ValidateQuantity(q int64) error {
	if q <= 0 || q > MaxQuantity {
		return fmt.Errorf("%w: %d (must be 1..%d)", ErrInvalidQuantity, q, MaxQuantity)
	}
	return nil
}

// Deduction is the answer to one deduction.
type Deduction struct {
	// OK is true when the units were taken.
	OK bool
	// Remaining is the stock the server reported after the attempt (the
	// unchanged stock when refused). For the decr strategy it is the value
	// DECRBY returned, which is negative when refused; for the sharded
	// strategy it is the total over all shards; for sharded-slots it is
	// what the shards the deduction visited held after their step (the
	// other shards are not read: no one instant shows shards that live in
	// different slots).
	Remaining int64
	// Retries counts optimistic retries (watch), or walks started again
	// (sharded-slots), taken by this deduction.
	Retries int
	// Replayed is true when a Purchase found its id already recorded: the
	// answer is the recorded outcome (OK, the recorded units taken once)
	// and nothing was deducted by this call; Remaining is the stock now.
	// Only the strategies whose purchases are idempotent (watch,
	// idempotent, sharded, sharded-slots) ever set it.
	Replayed bool
	// Unconfirmed is true when the strategy sent WAIT after its write
	// (ConnConfig.WaitReplicas) and fewer replicas than asked acknowledged
	// it within the time-out: the write happened on the master, its
	// copy on the replicas was not confirmed. Set on answers OK only.
	Unconfirmed bool
}

// Stock is the stock (inventory) family: one counter of sellable units per
// item.
type Stock interface {
	// Set seeds the stock of item with units, replacing what was there.
	// units may be any count from 0 up (it is not bounded by MaxQuantity);
	// a negative count is an error wrapping ErrInvalidQuantity.
	Set(ctx context.Context, item string, units int64) error
	// Deduct takes qty units of item if the stock allows it. A refusal is
	// not an error: OK is false and err is nil. An invalid qty is an error
	// wrapping ErrInvalidQuantity, returned before any Redis call.
	Deduct(ctx context.Context, item string, qty int64) (Deduction, error)
	// Purchase is Deduct with an identity: when the units are taken, the
	// purchase id -> qty is recorded in the item's purchases hash
	// (PurchasesKey), so that the server itself says which purchases
	// happened, whatever became of their replies. A refusal records
	// nothing. An invalid qty wraps ErrInvalidQuantity and an invalid id
	// ErrInvalidID (ValidatePurchaseID), both before any Redis call.
	//
	// watch, lua, idempotent and sharded record the purchase in the same
	// atomic step as the deduction (the MULTI/EXEC, the script), so a
	// record exists if and only if the units were taken. watch, idempotent
	// and sharded are also idempotent on id: a purchase whose id is
	// already recorded deducts nothing and answers the recorded outcome
	// (OK, Replayed), so a re-sent purchase — a client retrying after a
	// lost reply — cannot take the units twice. lua does not look the id
	// up: a re-sent purchase deducts again and overwrites its record, so
	// the stock falls by more than the recorded units. naive and decr
	// record after the deduction, in a separate command, and do not look
	// for the id first: a record proves the units were taken, but units
	// may be taken without a record (the reply of the deduction or the
	// record was lost), and a re-sent purchase deducts again.
	//
	// sharded-slots records on each shard the units it took there, in the
	// same script as the take (the shard's purchases hash,
	// SlotShard.Purchases: id -> "<taken here>/<qty>"), so the records of
	// all shards add up to what the stock lost; a walk that runs short
	// gives its units back and deletes its records. It is idempotent on id
	// as long as a re-send follows its first send: the walk's order depends
	// on the id alone, and a shard where the id is recorded is answered
	// from its record.
	Purchase(ctx context.Context, item, id string, qty int64) (Deduction, error)
	// Get returns the current stock of item (0 when it was never set).
	Get(ctx context.Context, item string) (int64, error)
	// Restore puts qty units back and returns the new stock. An invalid qty
	// is an error wrapping ErrInvalidQuantity, returned before any Redis
	// call.
	Restore(ctx context.Context, item string, qty int64) (int64, error)
}

// StockOptions tunes a stock strategy.
type StockOptions struct {
	// Keys is the run's keyspace; required.
	Keys Keyspace
	// Think is a pause between the read and the write of the naive
	// strategy, widening its race window. Zero by default.
	Think time.Duration
	// MaxRetries bounds the watch strategy's optimistic retries, and the
	// walks sharded-slots starts again while other walks hold units or the
	// item's walk lock (default 64).
	MaxRetries int
	// Shards is the number of sub-keys of the sharded and sharded-slots
	// strategies (default 8).
	Shards int
}

// WithDefaults returns o with zero fields set to their defaults.
func (o StockOptions) WithDefaults() StockOptions {
	if o.MaxRetries <= 0 {
		o.MaxRetries = 64
	}
	if o.Shards <= 0 {
		o.Shards = 8
	}
	return o
}

// StockBackend is implemented by backends that offer the stock family.
type StockBackend interface {
	// Stock returns the named strategy.
	Stock(strategy string, opts StockOptions) (Stock, error)
}

// StockKey is the key of item's stock counter (strategies other than
// sharded): prefix + "stock:{<item>}", a string holding an integer.
func StockKey(k Keyspace, item string) string { return k.Tagged("stock", item) }

// PurchasesKey is the hash of item's recorded purchases (Stock.Purchase):
// prefix + "purchases:{<item>}", field purchase id, value the units taken.
// It shares the item's hash tag with its stock keys, so one script may
// touch both on Redis Cluster.
func PurchasesKey(k Keyspace, item string) string { return k.Tagged("purchases", item) }

// MaxPurchaseID is the longest purchase id, in bytes.
const MaxPurchaseID = 512

// ValidatePurchase validates a purchase of qty units under id
// (ValidateQuantity, then ValidatePurchaseID).
func ValidatePurchase(qty int64, id string) error {
	if err := ValidateQuantity(qty); err != nil {
		return err
	}
	return ValidatePurchaseID(id)
}

// ValidatePurchaseID returns an error wrapping ErrInvalidID unless id is
// 1..MaxPurchaseID bytes (any bytes: it is a hash field, never part of a
// key).
func ValidatePurchaseID(id string) error {
	if id == "" || len(id) > MaxPurchaseID {
		return fmt.Errorf("%w: purchase id of %d bytes (must be 1..%d)", ErrInvalidID, len(id), MaxPurchaseID)
	}
	return nil
}

// StockShardKey is the key of one shard of item's stock (sharded strategy):
// prefix + "stock:{<item>}:shard:<i>". All shards of an item share one slot.
func StockShardKey(k Keyspace, item string, shard int) string {
	return k.Tagged("stock", item, "shard", fmt.Sprint(shard))
}
