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

// The sharded-slots scripts: one step of a walk (EVALSHA, EVAL fallback),
// and its end on a shard. The release runs on several shards at once,
// with ExecMulti; a NoSha script makes that plain EVALs in one DoMulti,
// where the SHA form would first SCRIPT LOAD on every node each time.
var (
	stockSlotTakeScript    = rd.NewLuaScript(scripts.StockSlotTake)
	stockSlotReleaseScript = rd.NewLuaScriptNoSha(scripts.StockSlotRelease)
)

var (
	_ impl.Stock       = (*slotStock)(nil)
	_ impl.SlotStepper = (*slotStock)(nil)
)

// slotStock splits an item's stock over opts.Shards shards with a hash tag
// each (impl.SlotShards), so on a Redis Cluster over several masters; a
// deduction walks them one script at a time (impl.SlotWalk). rueidis's
// cluster client sends each command to its slot's master, and splits a
// DoMulti by master.
type slotStock struct {
	rc     rd.Client
	opts   impl.StockOptions
	layout *impl.SlotShards
	// w sends WAIT after each step's script (nil: none).
	w *waiter
}

func newSlotStock(rc rd.Client, opts impl.StockOptions) *slotStock {
	return &slotStock{rc: rc, opts: opts, layout: impl.NewSlotShards(opts.Keys, opts.Shards)}
}

func (s *slotStock) errorf(op, item string, err error) error {
	return fmt.Errorf("rueidis stock %s: %s %q: %w", impl.StockShardedSlots, op, item, err)
}

// Set spreads units evenly over the shards (impl.SplitUnits), drops every
// shard's holds and deletes the plain stock key, in one DoMulti: each
// shard is set atomically, the item as a whole is not (its shards live in
// different slots).
func (s *slotStock) Set(ctx context.Context, item string, units int64) error {
	if err := impl.ValidateUnits(units); err != nil {
		return s.errorf("set", item, err)
	}
	shards := s.layout.Shards(item)
	shares := impl.SplitUnits(units, len(shards))
	cmds := make(rd.Commands, 0, 1+2*len(shards))
	cmds = append(cmds, s.rc.B().Del().Key(impl.StockKey(s.opts.Keys, item)).Build())
	for i, sh := range shards {
		cmds = append(cmds,
			s.rc.B().Set().Key(sh.Stock).Value(strconv.FormatInt(shares[i], 10)).Build(),
			s.rc.B().Del().Key(sh.Holds).Build())
	}
	for _, r := range s.rc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return s.errorf("set", item, err)
		}
	}
	return nil
}

// Get sums the shards: one GET each, in one DoMulti (not one instant).
func (s *slotStock) Get(ctx context.Context, item string) (int64, error) {
	n, err := s.total(ctx, item)
	if err != nil {
		return 0, s.errorf("get", item, err)
	}
	return n, nil
}

func (s *slotStock) total(ctx context.Context, item string) (int64, error) {
	shards := s.layout.Shards(item)
	cmds := make(rd.Commands, len(shards))
	for i, sh := range shards {
		cmds[i] = s.rc.B().Get().Key(sh.Stock).Build()
	}
	var total int64
	for _, r := range s.rc.DoMulti(ctx, cmds...) {
		n, err := r.AsInt64()
		if rd.IsRedisNil(err) {
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
	key := shards[rand.IntN(len(shards))].Stock
	if err := s.rc.Do(ctx, s.rc.B().Incrby().Key(key).Increment(qty).Build()).Error(); err != nil {
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
	vals, confirmed, err := s.w.script(ctx, s.rc, stockSlotTakeScript, []string{sh.Stock, sh.Holds, sh.Purchases},
		[]string{strconv.FormatInt(need, 10), token, id, strconv.FormatInt(qty, 10), mode})
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
// shard, in one ExecMulti.
func (s *slotStock) Release(ctx context.Context, shards []impl.SlotShard, token, id string, refund bool) (int64, error) {
	mode := "0"
	if refund {
		mode = "1"
	}
	execs := make([]rd.LuaExec, len(shards))
	for i, sh := range shards {
		execs[i] = rd.LuaExec{Keys: []string{sh.Stock, sh.Holds, sh.Purchases}, Args: []string{token, id, mode}}
	}
	var back int64
	var errs []error
	for _, r := range stockSlotReleaseScript.ExecMulti(ctx, s.rc, execs...) {
		n, err := r.AsInt64()
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
	err := s.rc.Do(ctx, s.rc.B().Set().Key(key).Value(token).Nx().PxMilliseconds(ttl.Milliseconds()).Build()).Error()
	if rd.IsRedisNil(err) {
		return false, nil
	}
	return err == nil, err
}

// Unlock implements impl.SlotStepper with scripts.LockRelease.
func (s *slotStock) Unlock(ctx context.Context, key, token string) error {
	_, err := compareDelete(ctx, s.rc, key, token)
	return err
}
