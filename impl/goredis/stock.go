package goredis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The stock scripts, shared by every Client: redis.Script keeps the SHA1 and
// Run sends EVALSHA, falling back to EVAL when the server's script cache
// does not have it (NOSCRIPT).
var (
	stockDeductScript           = redis.NewScript(scripts.StockDeduct)
	stockShardDeductScript      = redis.NewScript(scripts.StockShardDeduct)
	stockShardedDeductAllScript = redis.NewScript(scripts.StockShardedDeductAll)
	stockPurchasePlainScript    = redis.NewScript(scripts.StockPurchasePlain)
	stockPurchaseScript         = redis.NewScript(scripts.StockPurchase)
	stockShardedPurchaseScript  = redis.NewScript(scripts.StockShardedPurchase)
)

// compensationTimeout bounds the INCRBY that gives back units the decr
// strategy took beyond the stock; it runs even when the caller's context
// has ended, since skipping it would lose units for good.
const compensationTimeout = 3 * time.Second

// Compile-time checks: every strategy is an impl.Stock.
var (
	_ impl.Stock = (*naiveStock)(nil)
	_ impl.Stock = (*decrStock)(nil)
	_ impl.Stock = (*watchStock)(nil)
	_ impl.Stock = (*luaStock)(nil)
	_ impl.Stock = (*shardedStock)(nil)
)

// Stock returns the named stock strategy (one of impl.StockStrategies).
// Zero options take their defaults (impl.StockOptions.WithDefaults);
// opts.Keys is required.
func (c *Client) Stock(strategy string, opts impl.StockOptions) (impl.Stock, error) {
	if opts.Keys.Prefix() == "" {
		return nil, errors.New("goredis: stock: StockOptions.Keys is required")
	}
	opts = opts.WithDefaults()
	base := plainStock{rdb: c.rdb, opts: opts, name: strategy}
	if c.wait.Applies(strategy) {
		base.w = &waiter{rdb: c.rdb, wait: c.wait, nodes: c.nodes}
	}
	switch strategy {
	case impl.StockNaive:
		return &naiveStock{base}, nil
	case impl.StockDecr:
		return &decrStock{base}, nil
	case impl.StockWatch:
		return &watchStock{base}, nil
	case impl.StockLua:
		return &luaStock{plainStock: base, purchase: stockPurchasePlainScript}, nil
	case impl.StockIdempotent:
		return &luaStock{plainStock: base, purchase: stockPurchaseScript}, nil
	case impl.StockSharded:
		return &shardedStock{rdb: c.rdb, opts: opts, w: base.w}, nil
	case impl.StockShardedSlots:
		s := newSlotStock(c.rdb, opts)
		s.w = base.w
		return s, nil
	}
	return nil, impl.StrategyError("stock", strategy, impl.StockStrategies())
}

// plainStock is what every strategy on the single counter impl.StockKey
// shares: Set, Get and Restore.
type plainStock struct {
	rdb  redis.UniversalClient
	opts impl.StockOptions
	name string
	// w sends WAIT after each write (nil: none; see waiter).
	w *waiter
}

func (s *plainStock) key(item string) string { return impl.StockKey(s.opts.Keys, item) }

func (s *plainStock) purchasesKey(item string) string { return impl.PurchasesKey(s.opts.Keys, item) }

func (s *plainStock) errorf(op, item string, err error) error {
	return fmt.Errorf("goredis stock %s: %s %q: %w", s.name, op, item, err)
}

// record writes a purchase's record after its deduction (naive, decr: a
// separate command, not atomic with it).
func (s *plainStock) record(ctx context.Context, item, id string, qty int64) error {
	if err := s.rdb.HSet(ctx, s.purchasesKey(item), id, qty).Err(); err != nil {
		return fmt.Errorf("%d units taken, but recording purchase %q failed: %w", qty, id, err)
	}
	return nil
}

// Set stores units in the item's counter.
func (s *plainStock) Set(ctx context.Context, item string, units int64) error {
	if err := impl.ValidateUnits(units); err != nil {
		return s.errorf("set", item, err)
	}
	if err := s.rdb.Set(ctx, s.key(item), units, 0).Err(); err != nil {
		return s.errorf("set", item, err)
	}
	return nil
}

// Get reads the item's counter; a missing key is 0.
func (s *plainStock) Get(ctx context.Context, item string) (int64, error) {
	n, err := s.rdb.Get(ctx, s.key(item)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, s.errorf("get", item, err)
	}
	return n, nil
}

// Restore adds qty back with INCRBY.
func (s *plainStock) Restore(ctx context.Context, item string, qty int64) (int64, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return 0, s.errorf("restore", item, err)
	}
	n, err := s.rdb.IncrBy(ctx, s.key(item), qty).Result()
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	return n, nil
}

// naiveStock is the seed's reduce_stock: GET, compare in the client, SET.
// Concurrent buyers can all read the same stock and all succeed: it
// oversells, by design.
type naiveStock struct{ plainStock }

// Deduct reads the stock, compares, optionally pauses opts.Think, and
// writes stock-qty back.
func (s *naiveStock) Deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	d, err := s.deduct(ctx, item, qty)
	if err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	return d, nil
}

// Purchase is Deduct, then HSET of the record when the units were taken:
// not atomic with the deduction, and not idempotent.
func (s *naiveStock) Purchase(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidatePurchase(qty, id); err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	d, err := s.deduct(ctx, item, qty)
	if err == nil && d.OK {
		err = s.record(ctx, item, id, qty)
	}
	if err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	return d, nil
}

func (s *naiveStock) deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	key := s.key(item)
	cur, err := s.rdb.Get(ctx, key).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return impl.Deduction{}, err
	}
	if cur < qty {
		return impl.Deduction{Remaining: cur}, nil
	}
	if err := impl.Sleep(ctx, s.opts.Think); err != nil {
		return impl.Deduction{}, err
	}
	if err := s.rdb.Set(ctx, key, cur-qty, 0).Err(); err != nil {
		return impl.Deduction{}, err
	}
	return impl.Deduction{OK: true, Remaining: cur - qty}, nil
}

// decrStock takes the units with DECRBY and, when the result is negative,
// gives them back with INCRBY. It never oversells, but the counter is
// transiently negative, and a concurrent buyer may be refused while the
// compensation is in flight.
type decrStock struct{ plainStock }

// Deduct runs DECRBY and compensates with INCRBY when it went below zero;
// Remaining is the DECRBY reply, negative when refused.
func (s *decrStock) Deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	d, err := s.deduct(ctx, item, qty)
	if err != nil {
		return d, s.errorf("deduct", item, err)
	}
	return d, nil
}

// Purchase is Deduct, then HSET of the record when the units were taken:
// not atomic with the deduction, and not idempotent.
func (s *decrStock) Purchase(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidatePurchase(qty, id); err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	d, err := s.deduct(ctx, item, qty)
	if err == nil && d.OK {
		if err = s.record(ctx, item, id, qty); err != nil {
			d = impl.Deduction{}
		}
	}
	if err != nil {
		return d, s.errorf("purchase", item, err)
	}
	return d, nil
}

func (s *decrStock) deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	key := s.key(item)
	n, err := s.rdb.DecrBy(ctx, key, qty).Result()
	if err != nil {
		return impl.Deduction{}, err
	}
	if n >= 0 {
		return impl.Deduction{OK: true, Remaining: n}, nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensationTimeout)
	defer cancel()
	if err := s.rdb.IncrBy(cctx, key, qty).Err(); err != nil {
		return impl.Deduction{Remaining: n},
			fmt.Errorf("compensating INCRBY %d failed, stock is short by that much: %w", qty, err)
	}
	return impl.Deduction{Remaining: n}, nil
}

// watchStock is optimistic: WATCH the key, GET, and DECRBY inside
// MULTI/EXEC; EXEC aborts when another client changed the key in between,
// and the deduction starts over, at most opts.MaxRetries times. A purchase
// also watches the item's purchases hash, reads its id there (a recorded id
// is answered from the record, nothing taken again) and records itself
// with HSET in the same MULTI/EXEC as the DECRBY.
type watchStock struct{ plainStock }

// Deduct runs the WATCH transaction, retrying aborted ones; when the
// retries are exhausted it returns an error wrapping impl.ErrContention.
func (s *watchStock) Deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	d, err := s.run(ctx, item, "", qty)
	if err != nil {
		return d, s.errorf("deduct", item, err)
	}
	return d, nil
}

// Purchase runs the WATCH transaction with the purchase's record inside it:
// atomic and idempotent on id.
func (s *watchStock) Purchase(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidatePurchase(qty, id); err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	d, err := s.run(ctx, item, id, qty)
	if err != nil {
		return d, s.errorf("purchase", item, err)
	}
	return d, nil
}

// run is the WATCH transaction of a deduction, or of a purchase when id is
// not empty, with its bounded retries.
func (s *watchStock) run(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	key := s.key(item)
	watched := []string{key}
	var pkey string
	if id != "" {
		pkey = s.purchasesKey(item)
		watched = append(watched, pkey)
	}
	var d impl.Deduction
	var ran bool
	txf := func(tx *redis.Tx) error {
		ran = true
		var get *redis.StringCmd
		var rec *redis.BoolCmd
		// Replies are checked one by one below: a missing key (redis.Nil)
		// is an answer, not an error.
		_, _ = tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, key)
			if id != "" {
				rec = p.HExists(ctx, pkey, id)
			}
			return nil
		})
		cur, err := get.Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if rec != nil {
			recorded, err := rec.Result()
			if err != nil {
				return err
			}
			if recorded {
				d.OK, d.Remaining, d.Replayed = true, cur, true
				return nil
			}
		}
		if cur < qty {
			d.OK, d.Remaining = false, cur
			return nil
		}
		var decr *redis.IntCmd
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			decr = p.DecrBy(ctx, key, qty)
			if id != "" {
				p.HSet(ctx, pkey, id, qty)
			}
			return nil
		})
		if err != nil {
			return err
		}
		d.OK, d.Remaining = true, decr.Val()
		if s.w.on() {
			// The transaction's connection is the Tx's own: WAIT on it.
			acked, err := tx.Wait(ctx, s.w.wait.Replicas, s.w.wait.Timeout).Result()
			d.Unconfirmed = err != nil || !s.w.wait.Confirmed(acked)
		}
		return nil
	}
	for {
		ran = false
		err := s.rdb.Watch(ctx, txf, watched...)
		if err == nil && !ran {
			// go-redis's ClusterClient.Watch (v9.23) can return nil without
			// running the transaction: when the node's client is closed on
			// every attempt (the backend was closed, or a topology change
			// closed the node), its last attempt's error is overwritten.
			return impl.Deduction{Retries: d.Retries}, fmt.Errorf("goredis: WATCH returned without running the transaction: %w", redis.ErrClosed)
		}
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, redis.TxFailedErr) {
			return impl.Deduction{Retries: d.Retries}, err
		}
		if d.Retries >= s.opts.MaxRetries {
			return impl.Deduction{Retries: d.Retries}, fmt.Errorf("%w (%d retries)", impl.ErrContention, d.Retries)
		}
		if err := ctx.Err(); err != nil {
			return impl.Deduction{Retries: d.Retries}, err
		}
		d.Retries++
	}
}

// luaStock checks and deducts in one server-side script, atomically. It is
// both the lua strategy (purchase is scripts.StockPurchasePlain: a re-sent
// purchase deducts again) and the idempotent one (scripts.StockPurchase:
// a recorded id is answered from its record); their Deduct is the same.
type luaStock struct {
	plainStock
	purchase *redis.Script
}

// Deduct runs scripts.StockDeduct.
func (s *luaStock) Deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	d, err := s.w.deduct(ctx, s.rdb, stockDeductScript, []string{s.key(item)}, qty)
	if err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	return d, nil
}

// Purchase runs the strategy's purchase script: the deduction and its
// record in one script; idempotent on id for the idempotent strategy only.
func (s *luaStock) Purchase(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidatePurchase(qty, id); err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	d, err := s.w.deduct(ctx, s.rdb, s.purchase, []string{s.key(item), s.purchasesKey(item)}, qty, id)
	if err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	return d, nil
}

// runDeduct runs a check-and-deduct script with the quantity (and, for a
// purchase, the id) and decodes its {ok, remaining[, replayed]}.
func runDeduct(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, keys []string, qty int64, id ...any) (impl.Deduction, error) {
	res, err := script.Run(ctx, rdb, keys, append([]any{qty}, id...)...).Int64Slice()
	if err != nil {
		return impl.Deduction{}, err
	}
	return impl.DecodeDeduction(res)
}

// shardedStock splits an item's stock over opts.Shards sub-keys
// (impl.StockShardKey) that share one hash tag. A deduction tries one shard
// picked at random and, when that shard alone cannot serve it but the total
// can, takes the units from several shards in one script, so no sellable
// unit is stranded.
type shardedStock struct {
	rdb  redis.UniversalClient
	opts impl.StockOptions
	w    *waiter
}

func (s *shardedStock) errorf(op, item string, err error) error {
	return fmt.Errorf("goredis stock %s: %s %q: %w", impl.StockSharded, op, item, err)
}

// keys returns the item's shard keys, starting at shard first and wrapping
// around.
func (s *shardedStock) keys(item string, first int) []string {
	return impl.StockShardKeys(s.opts.Keys, item, first, s.opts.Shards)
}

// Set spreads units evenly over the shards (the remainder goes to the
// first shards) and deletes the plain stock key, in one MULTI/EXEC.
func (s *shardedStock) Set(ctx context.Context, item string, units int64) error {
	if err := impl.ValidateUnits(units); err != nil {
		return s.errorf("set", item, err)
	}
	keys := s.keys(item, 0)
	shares := impl.SplitUnits(units, len(keys))
	pairs := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		pairs = append(pairs, k, shares[i])
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, impl.StockKey(s.opts.Keys, item))
		p.MSet(ctx, pairs...)
		return nil
	})
	if err != nil {
		return s.errorf("set", item, err)
	}
	return nil
}

// Get sums the shards (MGET; missing shards are 0).
func (s *shardedStock) Get(ctx context.Context, item string) (int64, error) {
	vals, err := s.rdb.MGet(ctx, s.keys(item, 0)...).Result()
	if err != nil {
		return 0, s.errorf("get", item, err)
	}
	total, err := sumShards(vals)
	if err != nil {
		return 0, s.errorf("get", item, err)
	}
	return total, nil
}

// sumShards adds MGET replies; nil (missing key) counts as 0.
func sumShards(vals []any) (int64, error) {
	var total int64
	for _, v := range vals {
		if v == nil {
			continue
		}
		str, ok := v.(string)
		if !ok {
			return 0, fmt.Errorf("shard holds %T, want an integer string", v)
		}
		n, err := strconv.ParseInt(str, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("shard is not an integer: %w", err)
		}
		total += n
	}
	return total, nil
}

// Deduct runs scripts.StockShardDeduct on a random shard and, when that
// shard is too small but the total covers qty, scripts.StockShardedDeductAll.
// Remaining is the total over all shards.
func (s *shardedStock) Deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	keys := s.keys(item, rand.IntN(s.opts.Shards))
	d, err := s.w.deduct(ctx, s.rdb, stockShardDeductScript, keys, qty)
	if err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	if d.OK || d.Remaining < qty {
		return d, nil
	}
	d, err = s.w.deduct(ctx, s.rdb, stockShardedDeductAllScript, keys, qty)
	if err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	return d, nil
}

// Purchase runs scripts.StockShardedPurchase from a random shard: the
// chosen shard when it covers qty alone, else the chosen one and the next
// ones, and the purchase's record, in one script, idempotent on id.
// Remaining is the total over all shards.
func (s *shardedStock) Purchase(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidatePurchase(qty, id); err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	keys := append([]string{impl.PurchasesKey(s.opts.Keys, item)}, s.keys(item, rand.IntN(s.opts.Shards))...)
	d, err := s.w.deduct(ctx, s.rdb, stockShardedPurchaseScript, keys, qty, id)
	if err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	return d, nil
}

// Restore adds qty to one random shard and returns the new total, INCRBY
// and MGET in one MULTI/EXEC.
func (s *shardedStock) Restore(ctx context.Context, item string, qty int64) (int64, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return 0, s.errorf("restore", item, err)
	}
	keys := s.keys(item, rand.IntN(s.opts.Shards))
	var mget *redis.SliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.IncrBy(ctx, keys[0], qty)
		mget = p.MGet(ctx, keys...)
		return nil
	})
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	total, err := sumShards(mget.Val())
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	return total, nil
}
