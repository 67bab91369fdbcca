package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
)

func init() {
	RegisterOperation(Operation{
		Name:        "stock.deduct",
		Description: "deduct one unit of stock from an item (seeded so no run empties it)",
		Strategies:  []string{impl.StockLua, impl.StockIdempotent, impl.StockNaive, impl.StockDecr, impl.StockWatch, impl.StockSharded, impl.StockShardedSlots},
		Setup:       setupStockDeduct,
	})
}

// loadStockUnits is the stock each item starts with in a load run: large
// enough that no run empties it, so every deduction does the full work.
const loadStockUnits = 1 << 40

// maxFigureItems bounds the items whose stock is read back for the
// figures after a load run.
const maxFigureItems = 10_000

// figureReadChunk is how many keys one MGET of the read-back asks for.
const figureReadChunk = 1000

// stockLoadTally is one worker's tally of a stock.deduct run, on its own
// cache line. ok, refused, unknown and failed count the measured window;
// runOK and runUnknown the whole run, warm-up included, as the server's
// stock does.
type stockLoadTally struct {
	ok, refused, unknown, failed int64
	runOK, runUnknown            int64
	_                            [64]byte
}

// count tallies n deductions that ended alike: ok of them taken, the
// others refused, or all failed with err (classified by classify).
func (t *stockLoadTally) count(measuring bool, n, ok int64, err error, classify func(error) string) {
	if err != nil {
		unknown := impl.MayHaveApplied(classify(err))
		if unknown {
			t.runUnknown += n
		}
		if measuring {
			if unknown {
				t.unknown += n
			} else {
				t.failed += n
			}
		}
		return
	}
	t.runOK += ok
	if measuring {
		t.ok += ok
		t.refused += n - ok
	}
}

func setupStockDeduct(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	sb, ok := env.Backend.(impl.StockBackend)
	if !ok {
		return nil, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	opts := impl.StockOptions{Keys: env.Keys}.WithDefaults()
	stock, err := sb.Stock(strategy, opts)
	if err != nil {
		return nil, err
	}
	items := make([]string, env.KeyCount)
	for i := range items {
		items[i] = "item-" + strconv.Itoa(i)
		if err := stock.Set(ctx, items[i], loadStockUnits); err != nil {
			return nil, fmt.Errorf("seed stock: %w", err)
		}
	}
	classify := env.Backend.Classify
	tallies := newWorkerSlots(env.Workers, func() *stockLoadTally { return new(stockLoadTally) })
	load := &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			d, err := stock.Deduct(ctx, items[env.Pick(w)], 1)
			var ok int64
			if d.OK {
				ok = 1
			}
			tallies.get(w.ID).count(w.Measuring(), 1, ok, err, classify)
			return err
		},
		Figures: func(ctx context.Context) (map[string]float64, error) {
			return stockDeductFigures(ctx, env, strategy, opts, items, tallies)
		},
	}
	if b, ok := stock.(impl.StockBatcher); ok {
		// One item buffer per worker, reused by every batch: worker w only
		// ever touches bufs[w.ID], so the slots need no lock. A worker ID
		// beyond env.Workers (unknown worker count) gets a fresh buffer per
		// batch.
		bufs := make([][]string, env.Workers)
		load.Batch = func(ctx context.Context, w *bench.Worker, n int) error {
			var batch []string
			if w.ID < len(bufs) {
				if cap(bufs[w.ID]) < n {
					bufs[w.ID] = make([]string, n)
				}
				batch = bufs[w.ID][:n]
			} else {
				batch = make([]string, n)
			}
			for i := range batch {
				batch[i] = items[env.Pick(w)]
			}
			ds, err := b.DeductBatch(ctx, batch, 1)
			t := tallies.get(w.ID)
			var ok int64
			for _, d := range ds {
				if d.OK {
					ok++
				}
			}
			var be *impl.BatchError
			switch {
			case err == nil:
				t.count(w.Measuring(), int64(n), ok, nil, classify)
			case errors.As(err, &be) && ds != nil:
				// Some failed (their Deduction is zero), the others
				// answered: counted apart, the failed ones by the first
				// failure's class.
				t.count(w.Measuring(), int64(n-be.Failed), ok, nil, classify)
				t.count(w.Measuring(), int64(be.Failed), 0, err, classify)
			default:
				t.count(w.Measuring(), int64(n), 0, err, classify)
			}
			return err
		}
	}
	return load, nil
}

// stockDeductFigures reports the workers' tallies — deductions that took a
// unit, refusals, failures that may have applied (unknown) and failures
// that surely did not — and what the server's stock lost, read with the
// admin client, checked against them. A seeded key that is gone (a
// restarted server, a flush) or holds more than its seed is reported as
// such (stock_keys_lost, stock_keys_above_seed), as is one that holds less
// than the whole run could have left (stock_keys_below_possible: re-created
// from nothing, by decr's compensation or naive's stale write); the units
// deducted are then not reported at all: 2^40 minus nothing is no count.
func stockDeductFigures(ctx context.Context, env *LoadEnv, strategy string, opts impl.StockOptions,
	items []string, tallies *workerSlots[stockLoadTally]) (map[string]float64, error) {
	var sum stockLoadTally
	tallies.each(func(t *stockLoadTally) {
		sum.ok += t.ok
		sum.refused += t.refused
		sum.unknown += t.unknown
		sum.failed += t.failed
		sum.runOK += t.runOK
		sum.runUnknown += t.runUnknown
	})
	f := map[string]float64{
		"purchases_ok":      float64(sum.ok),
		"purchases_refused": float64(sum.refused),
		"purchases_unknown": float64(sum.unknown),
		"purchases_failed":  float64(sum.failed),
	}
	if len(items) > maxFigureItems {
		return f, nil
	}

	// Every key the items' stock lives in, item by item.
	perItem := 1
	if strategy == impl.StockSharded || strategy == impl.StockShardedSlots {
		perItem = opts.Shards
	}
	var slots *impl.SlotShards
	if strategy == impl.StockShardedSlots {
		slots = impl.NewSlotShards(opts.Keys, opts.Shards)
	}
	keys := make([]string, 0, len(items)*perItem)
	for _, it := range items {
		switch strategy {
		case impl.StockSharded:
			keys = append(keys, impl.StockShardKeys(opts.Keys, it, 0, opts.Shards)...)
		case impl.StockShardedSlots:
			keys = append(keys, slots.StockKeys(it)...)
		default:
			keys = append(keys, impl.StockKey(opts.Keys, it))
		}
	}
	shares := impl.SplitUnits(loadStockUnits, perItem)
	possible := sum.runOK + sum.runUnknown // the most the run can have taken
	var lost, above, below, negative, taken int64
	for lo := 0; lo < len(keys); lo += figureReadChunk {
		chunk := keys[lo:min(lo+figureReadChunk, len(keys))]
		vals, err := mget(ctx, env.Admin, chunk...)
		if err != nil {
			return nil, JudgementError(fmt.Errorf("read back the stock: %w", err))
		}
		for i, v := range vals {
			k := lo + i
			seed := shares[k%perItem]
			if v == nil {
				lost++
				continue
			}
			s, _ := v.(string)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, JudgementError(fmt.Errorf("stock key %s holds %q, not an integer", keys[k], v))
			}
			if n < 0 {
				negative++
			}
			switch {
			case n > seed:
				above++
			case seed-n > possible:
				below++
			}
			taken += seed - n
		}
	}
	f["stock_keys_lost"] = float64(lost)
	f["stock_keys_above_seed"] = float64(above)
	f["stock_keys_below_possible"] = float64(below)
	f["stock_keys_negative"] = float64(negative)
	if lost > 0 || above > 0 || below > 0 {
		// The seed is gone or was replaced (a key lost more than every
		// deduction of the run could take: decr's compensation re-created
		// it at 0, say): what the stock lost cannot be told from what it
		// holds.
		return f, nil
	}
	// Warm-up deductions included: the server's count of what the whole
	// run applied, against what the workers were told: at least the units
	// answered OK (naive's lost updates aside), at most those plus the
	// failures that may have applied.
	f["units_deducted_server"] = float64(taken)
	f["units_deducted_beyond_possible"] = float64(max(0, taken-(sum.runOK+sum.runUnknown)))
	f["units_answered_ok_not_deducted"] = float64(max(0, sum.runOK-taken))
	return f, nil
}
