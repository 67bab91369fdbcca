package rueidis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The stock scripts, shared by every Client: Exec sends EVALSHA and falls
// back to EVAL when the server's script cache does not have the script
// (NOSCRIPT).
var (
	stockDeductScript           = rd.NewLuaScript(scripts.StockDeduct)
	stockShardDeductScript      = rd.NewLuaScript(scripts.StockShardDeduct)
	stockShardedDeductAllScript = rd.NewLuaScript(scripts.StockShardedDeductAll)
	stockPurchasePlainScript    = rd.NewLuaScript(scripts.StockPurchasePlain)
	stockPurchaseScript         = rd.NewLuaScript(scripts.StockPurchase)
	stockShardedPurchaseScript  = rd.NewLuaScript(scripts.StockShardedPurchase)
)

// cleanupTimeout bounds the commands that must run even when the caller's
// context has ended: the INCRBY giving back what the decr strategy took
// beyond the stock (skipping it would lose units for good) and the UNWATCH
// that leaves a dedicated connection clean.
const cleanupTimeout = 3 * time.Second

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
		return nil, errors.New("rueidis: stock: StockOptions.Keys is required")
	}
	opts = opts.WithDefaults()
	base := plainStock{rc: c.rc, opts: opts, name: strategy}
	if c.wait.Applies(strategy) {
		base.w = &waiter{rc: c.rc, wait: c.wait}
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
		return &shardedStock{rc: c.rc, opts: opts, w: base.w}, nil
	case impl.StockShardedSlots:
		s := newSlotStock(c.rc, opts)
		s.w = base.w
		return s, nil
	}
	return nil, impl.StrategyError("stock", strategy, impl.StockStrategies())
}

// plainStock is what every strategy on the single counter impl.StockKey
// shares: Set, Get and Restore.
type plainStock struct {
	rc   rd.Client
	opts impl.StockOptions
	name string
	// w sends WAIT after each write (nil: none; see waiter).
	w *waiter
}

func (s *plainStock) key(item string) string { return impl.StockKey(s.opts.Keys, item) }

func (s *plainStock) purchasesKey(item string) string { return impl.PurchasesKey(s.opts.Keys, item) }

func (s *plainStock) errorf(op, item string, err error) error {
	return fmt.Errorf("rueidis stock %s: %s %q: %w", s.name, op, item, err)
}

// record writes a purchase's record after its deduction (naive, decr: a
// separate command, not atomic with it).
func (s *plainStock) record(ctx context.Context, item, id string, qty int64) error {
	cmd := s.rc.B().Hset().Key(s.purchasesKey(item)).FieldValue().FieldValue(id, strconv.FormatInt(qty, 10)).Build()
	if err := s.rc.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("%d units taken, but recording purchase %q failed: %w", qty, id, err)
	}
	return nil
}

// Set stores units in the item's counter.
func (s *plainStock) Set(ctx context.Context, item string, units int64) error {
	if err := impl.ValidateUnits(units); err != nil {
		return s.errorf("set", item, err)
	}
	cmd := s.rc.B().Set().Key(s.key(item)).Value(strconv.FormatInt(units, 10)).Build()
	if err := s.rc.Do(ctx, cmd).Error(); err != nil {
		return s.errorf("set", item, err)
	}
	return nil
}

// Get reads the item's counter; a missing key is 0.
func (s *plainStock) Get(ctx context.Context, item string) (int64, error) {
	n, err := getInt(ctx, s.rc, s.key(item))
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
	n, err := s.rc.Do(ctx, s.rc.B().Incrby().Key(s.key(item)).Increment(qty).Build()).AsInt64()
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	return n, nil
}

// getInt GETs an integer; a missing key is 0.
func getInt(ctx context.Context, c rd.CoreClient, key string) (int64, error) {
	n, err := c.Do(ctx, c.B().Get().Key(key).Build()).AsInt64()
	if rd.IsRedisNil(err) {
		return 0, nil
	}
	return n, err
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
	cur, err := getInt(ctx, s.rc, key)
	if err != nil {
		return impl.Deduction{}, err
	}
	if cur < qty {
		return impl.Deduction{Remaining: cur}, nil
	}
	if err := impl.Sleep(ctx, s.opts.Think); err != nil {
		return impl.Deduction{}, err
	}
	set := s.rc.B().Set().Key(key).Value(strconv.FormatInt(cur-qty, 10)).Build()
	if err := s.rc.Do(ctx, set).Error(); err != nil {
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
	n, err := s.rc.Do(ctx, s.rc.B().Decrby().Key(key).Decrement(qty).Build()).AsInt64()
	if err != nil {
		return impl.Deduction{}, err
	}
	if n >= 0 {
		return impl.Deduction{OK: true, Remaining: n}, nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.rc.Do(cctx, s.rc.B().Incrby().Key(key).Increment(qty).Build()).Error(); err != nil {
		return impl.Deduction{Remaining: n},
			fmt.Errorf("compensating INCRBY %d failed, stock is short by that much: %w", qty, err)
	}
	return impl.Deduction{Remaining: n}, nil
}

// watchStock is optimistic: on a dedicated connection, WATCH the key and
// GET it, then DECRBY inside MULTI/EXEC; EXEC replies nil when another
// client changed the key in between, and the deduction starts over, at most
// opts.MaxRetries times. A purchase also watches the item's purchases hash,
// reads its id there (a recorded id is answered from the record, nothing
// taken again) and records itself with HSET in the same MULTI/EXEC as the
// DECRBY.
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
	var pkey string
	if id != "" {
		pkey = s.purchasesKey(item)
	}
	for retries := 0; ; retries++ {
		d, aborted, err := s.attempt(ctx, key, pkey, id, qty)
		d.Retries = retries
		if err != nil {
			return impl.Deduction{Retries: retries}, err
		}
		if !aborted {
			return d, nil
		}
		if retries >= s.opts.MaxRetries {
			return impl.Deduction{Retries: retries}, fmt.Errorf("%w (%d retries)", impl.ErrContention, retries)
		}
		if err := ctx.Err(); err != nil {
			return impl.Deduction{Retries: retries}, err
		}
	}
}

// attempt runs one WATCH transaction (with the purchase's check and record
// when id is not empty); aborted reports an EXEC that replied nil because a
// watched key changed after WATCH.
func (s *watchStock) attempt(ctx context.Context, key, pkey, id string, qty int64) (d impl.Deduction, aborted bool, err error) {
	err = s.rc.Dedicated(func(c rd.DedicatedClient) error {
		execd := false
		defer func() {
			if !execd { // EXEC did not run, so the keys are still watched
				unwatch(ctx, c)
			}
		}()
		watched := []string{key}
		if id != "" {
			watched = append(watched, pkey)
		}
		read := []rd.Completed{c.B().Watch().Key(watched...).Build(), c.B().Get().Key(key).Build()}
		if id != "" {
			read = append(read, c.B().Hexists().Key(pkey).Field(id).Build())
		}
		resps := c.DoMulti(ctx, read...)
		if err := resps[0].Error(); err != nil {
			return err
		}
		cur, err := resps[1].AsInt64()
		if err != nil && !rd.IsRedisNil(err) {
			return err
		}
		if id != "" {
			recorded, err := resps[2].AsBool()
			if err != nil {
				return err
			}
			if recorded {
				d = impl.Deduction{OK: true, Remaining: cur, Replayed: true}
				return nil
			}
		}
		if cur < qty {
			d = impl.Deduction{Remaining: cur}
			return nil
		}
		tx := []rd.Completed{c.B().Multi().Build(), c.B().Decrby().Key(key).Decrement(qty).Build()}
		if id != "" {
			tx = append(tx, c.B().Hset().Key(pkey).FieldValue().FieldValue(id, strconv.FormatInt(qty, 10)).Build())
		}
		tx = append(tx, c.B().Exec().Build())
		send := tx
		if s.w.on() {
			// WAIT on the dedicated connection, right after EXEC.
			send = append(send[:len(tx):len(tx)], c.B().Wait().Numreplicas(int64(s.w.wait.Replicas)).Timeout(s.w.wait.Millis()).Build())
		}
		resps = c.DoMulti(ctx, send...)
		var wait rd.RedisResult
		if s.w.on() {
			wait, resps = resps[len(resps)-1], resps[:len(resps)-1]
		}
		exec := resps[len(resps)-1]
		execd = exec.NonRedisError() == nil
		for _, r := range resps[:len(resps)-1] {
			if err := r.Error(); err != nil {
				return err
			}
		}
		replies, err := exec.ToArray()
		if rd.IsRedisNil(err) {
			aborted = true
			return nil
		}
		if err != nil {
			return err
		}
		if len(replies) != len(tx)-2 {
			return fmt.Errorf("EXEC replied %d results, want %d", len(replies), len(tx)-2)
		}
		for _, m := range replies {
			if err := m.Error(); err != nil {
				return err
			}
		}
		n, err := replies[0].AsInt64()
		if err != nil {
			return err
		}
		d = impl.Deduction{OK: true, Remaining: n}
		if s.w.on() {
			acked, err := wait.AsInt64()
			d.Unconfirmed = err != nil || !s.w.wait.Confirmed(acked)
		}
		return nil
	})
	return d, aborted, err
}

// unwatch clears the connection's watched keys before it goes back to the
// pool, even when ctx has ended. A broken connection fails fast here and
// is discarded by rueidis anyway.
func unwatch(ctx context.Context, c rd.DedicatedClient) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = c.Do(cctx, c.B().Unwatch().Build())
}

// luaStock checks and deducts in one server-side script, atomically. It is
// both the lua strategy (purchase is scripts.StockPurchasePlain: a re-sent
// purchase deducts again) and the idempotent one (scripts.StockPurchase:
// a recorded id is answered from its record); their Deduct is the same.
type luaStock struct {
	plainStock
	purchase *rd.Lua
}

// Deduct runs scripts.StockDeduct.
func (s *luaStock) Deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	d, err := s.w.deduct(ctx, s.rc, stockDeductScript, []string{s.key(item)}, qty)
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
	d, err := s.w.deduct(ctx, s.rc, s.purchase, []string{s.key(item), s.purchasesKey(item)}, qty, id)
	if err != nil {
		return impl.Deduction{}, s.errorf("purchase", item, err)
	}
	return d, nil
}

// execDeduct runs a check-and-deduct script with the quantity (and, for a
// purchase, the id) and decodes its {ok, remaining[, replayed]}.
func execDeduct(ctx context.Context, rc rd.Client, script *rd.Lua, keys []string, qty int64, id ...string) (impl.Deduction, error) {
	res, err := script.Exec(ctx, rc, keys, append([]string{strconv.FormatInt(qty, 10)}, id...)).AsIntSlice()
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
	rc   rd.Client
	opts impl.StockOptions
	w    *waiter
}

func (s *shardedStock) errorf(op, item string, err error) error {
	return fmt.Errorf("rueidis stock %s: %s %q: %w", impl.StockSharded, op, item, err)
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
	mset := s.rc.B().Mset().KeyValue()
	for i, k := range keys {
		mset = mset.KeyValue(k, strconv.FormatInt(shares[i], 10))
	}
	resps := s.rc.DoMulti(ctx,
		s.rc.B().Multi().Build(),
		s.rc.B().Del().Key(impl.StockKey(s.opts.Keys, item)).Build(),
		mset.Build(),
		s.rc.B().Exec().Build())
	if _, err := execReplies(resps, 2); err != nil {
		return s.errorf("set", item, err)
	}
	return nil
}

// execReplies checks a MULTI, want queued commands, EXEC reply sequence and
// returns EXEC's replies.
func execReplies(resps []rd.RedisResult, want int) ([]rd.RedisMessage, error) {
	for _, r := range resps[:len(resps)-1] {
		if err := r.Error(); err != nil {
			return nil, err
		}
	}
	replies, err := resps[len(resps)-1].ToArray()
	if err != nil {
		return nil, fmt.Errorf("EXEC: %w", err)
	}
	if len(replies) != want {
		return nil, fmt.Errorf("EXEC replied %d results, want %d", len(replies), want)
	}
	for _, m := range replies {
		if err := m.Error(); err != nil {
			return nil, err
		}
	}
	return replies, nil
}

// Get sums the shards (MGET; missing shards are 0).
func (s *shardedStock) Get(ctx context.Context, item string) (int64, error) {
	vals, err := s.rc.Do(ctx, s.rc.B().Mget().Key(s.keys(item, 0)...).Build()).ToArray()
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
func sumShards(vals []rd.RedisMessage) (int64, error) {
	var total int64
	for _, v := range vals {
		if v.IsNil() {
			continue
		}
		n, err := v.AsInt64()
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
	d, err := s.w.deduct(ctx, s.rc, stockShardDeductScript, keys, qty)
	if err != nil {
		return impl.Deduction{}, s.errorf("deduct", item, err)
	}
	if d.OK || d.Remaining < qty {
		return d, nil
	}
	d, err = s.w.deduct(ctx, s.rc, stockShardedDeductAllScript, keys, qty)
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
	d, err := s.w.deduct(ctx, s.rc, stockShardedPurchaseScript, keys, qty, id)
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
	resps := s.rc.DoMulti(ctx,
		s.rc.B().Multi().Build(),
		s.rc.B().Incrby().Key(keys[0]).Increment(qty).Build(),
		s.rc.B().Mget().Key(keys...).Build(),
		s.rc.B().Exec().Build())
	replies, err := execReplies(resps, 2)
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	vals, err := replies[1].ToArray()
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	total, err := sumShards(vals)
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	return total, nil
}
