package goredis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The sharded-slots scripts: one step of a walk, and its end on a shard.
var (
	stockSlotTakeScript    = redis.NewScript(scripts.StockSlotTake)
	stockSlotReleaseScript = redis.NewScript(scripts.StockSlotRelease)
)

var (
	_ impl.Stock       = (*slotStock)(nil)
	_ impl.SlotStepper = (*slotStock)(nil)
)

// slotStock splits an item's stock over opts.Shards shards with a hash tag
// each (impl.SlotShards), so on a Redis Cluster over several masters; a
// deduction walks them one script at a time (impl.SlotWalk). On a
// ClusterClient each step goes to its shard's master; the pipelines of
// Set, Get and a walk's release are split by master.
type slotStock struct {
	rdb    redis.UniversalClient
	opts   impl.StockOptions
	layout *impl.SlotShards
	// w sends WAIT after each step's script (nil: none).
	w *waiter
}

func newSlotStock(rdb redis.UniversalClient, opts impl.StockOptions) *slotStock {
	return &slotStock{rdb: rdb, opts: opts, layout: impl.NewSlotShards(opts.Keys, opts.Shards)}
}

func (s *slotStock) errorf(op, item string, err error) error {
	return fmt.Errorf("goredis stock %s: %s %q: %w", impl.StockShardedSlots, op, item, err)
}

// Set spreads units evenly over the shards (impl.SplitUnits), drops every
// shard's holds and deletes the plain stock key, in one pipeline: each
// shard is set atomically, the item as a whole is not (its shards live
// in different slots).
func (s *slotStock) Set(ctx context.Context, item string, units int64) error {
	if err := impl.ValidateUnits(units); err != nil {
		return s.errorf("set", item, err)
	}
	shards := s.layout.Shards(item)
	shares := impl.SplitUnits(units, len(shards))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, impl.StockKey(s.opts.Keys, item))
		for i, sh := range shards {
			p.Set(ctx, sh.Stock, shares[i], 0)
			p.Del(ctx, sh.Holds)
		}
		return nil
	})
	if err != nil {
		return s.errorf("set", item, err)
	}
	return nil
}

// Get sums the shards: one GET each, in one pipeline (not one instant).
func (s *slotStock) Get(ctx context.Context, item string) (int64, error) {
	n, err := s.total(ctx, item)
	if err != nil {
		return 0, s.errorf("get", item, err)
	}
	return n, nil
}

func (s *slotStock) total(ctx context.Context, item string) (int64, error) {
	shards := s.layout.Shards(item)
	gets := make([]*redis.StringCmd, len(shards))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sh := range shards {
			gets[i] = p.Get(ctx, sh.Stock)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	var total int64
	for _, g := range gets {
		n, err := g.Int64()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("shard: %w", err)
		}
		total += n
	}
	return total, nil
}

// Deduct walks the shards from a random one (impl.SlotDeduct).
func (s *slotStock) Deduct(ctx context.Context, item string, qty int64) (impl.Deduction, error) {
	d, err := impl.SlotDeduct(ctx, s, s.layout, item, qty, s.opts.MaxRetries)
	if err != nil {
		return d, s.errorf("deduct", item, err)
	}
	return d, nil
}

// Purchase walks the shards from the one the id picks (impl.SlotPurchase).
func (s *slotStock) Purchase(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	d, err := impl.SlotPurchase(ctx, s, s.layout, item, id, qty, s.opts.MaxRetries)
	if err != nil {
		return d, s.errorf("purchase", item, err)
	}
	return d, nil
}

// Restore adds qty to one random shard (INCRBY) and returns the new total
// (read afterwards, shard by shard).
func (s *slotStock) Restore(ctx context.Context, item string, qty int64) (int64, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return 0, s.errorf("restore", item, err)
	}
	shards := s.layout.Shards(item)
	if err := s.rdb.IncrBy(ctx, shards[rand.IntN(len(shards))].Stock, qty).Err(); err != nil {
		return 0, s.errorf("restore", item, err)
	}
	n, err := s.total(ctx, item)
	if err != nil {
		return 0, s.errorf("restore", item, err)
	}
	return n, nil
}

// Take implements impl.SlotStepper with scripts.StockSlotTake.
func (s *slotStock) Take(ctx context.Context, sh impl.SlotShard, token, id string, need, qty int64, whole bool) (impl.SlotStep, error) {
	mode := "0"
	if whole {
		mode = "1"
	}
	vals, confirmed, err := s.w.script(ctx, s.rdb, stockSlotTakeScript, []string{sh.Stock, sh.Holds, sh.Purchases}, need, token, id, qty, mode)
	if err != nil {
		return impl.SlotStep{}, err
	}
	if len(vals) != 5 {
		return impl.SlotStep{}, fmt.Errorf("stock_slot_take replied %v, want 5 integers", vals)
	}
	return impl.SlotStep{Took: vals[0], Left: vals[1], HeldByOthers: vals[2], Replayed: vals[3] == 1, Qty: vals[4],
		Unconfirmed: vals[0] > 0 && !confirmed}, nil
}

// Release implements impl.SlotStepper: scripts.StockSlotRelease on every
// shard, EVALSHA in one pipeline, and EVAL (script.Run) for those whose
// script the server did not have.
func (s *slotStock) Release(ctx context.Context, shards []impl.SlotShard, token, id string, refund bool) (int64, error) {
	mode := "0"
	if refund {
		mode = "1"
	}
	keys := func(sh impl.SlotShard) []string { return []string{sh.Stock, sh.Holds, sh.Purchases} }
	cmds := make([]*redis.Cmd, len(shards))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sh := range shards {
			cmds[i] = stockSlotReleaseScript.EvalSha(ctx, p, keys(sh), token, id, mode)
		}
		return nil
	})
	var back int64
	var errs []error
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			n, err = stockSlotReleaseScript.Run(ctx, s.rdb, keys(shards[i]), token, id, mode).Int64()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		back += n
	}
	return back, errors.Join(errs...)
}

// Lock implements impl.SlotStepper: SET key token NX PX ttl.
func (s *slotStock) Lock(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, key, token, ttl).Result()
}

// Unlock implements impl.SlotStepper with scripts.LockRelease.
func (s *slotStock) Unlock(ctx context.Context, key, token string) error {
	_, err := compareDelete(ctx, s.rdb, key, token)
	return err
}
