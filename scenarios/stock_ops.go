package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
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
	// unrecorded counts deductions a recording run could not record (a
	// worker beyond the recorder's logs): the history is incomplete.
	unrecorded int64
	_          [64]byte
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
	rec := loadRecorder(env)
	load := &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			k := env.Pick(w)
			hl := rec.Log(w.ID)
			call := hl.Now()
			d, err := stock.Deduct(ctx, items[k], 1)
			t := tallies.get(w.ID)
			if hl != nil {
				recordDeduction(hl, int64(k), w.Seq, call, hl.Now(), d, err, classify)
			} else if rec != nil {
				t.unrecorded++
			}
			var ok int64
			if d.OK {
				ok = 1
			}
			t.count(w.Measuring(), 1, ok, err, classify)
			return err
		},
		Figures: func(ctx context.Context) (map[string]float64, error) {
			return stockDeductFigures(ctx, env, strategy, opts, items, tallies)
		},
		History: func(ctx context.Context) *result.History {
			var unrecorded int64
			tallies.each(func(t *stockLoadTally) { unrecorded += t.unrecorded })
			return loadStockHistory(ctx, env, rec, unrecorded, items)
		},
	}
	if b, ok := stock.(impl.StockBatcher); ok {
		// One item buffer per worker, reused by every batch: worker w only
		// ever touches bufs[w.ID], so the slots need no lock. A worker ID
		// beyond env.Workers (unknown worker count) gets a fresh buffer per
		// batch.
		bufs := make([][]string, env.Workers)
		// The batch's item indices, per worker, for the history.
		picks := make([][]int64, env.Workers)
		load.Batch = func(ctx context.Context, w *bench.Worker, n int) error {
			var batch []string
			var pick []int64
			if w.ID < len(bufs) {
				if cap(bufs[w.ID]) < n {
					bufs[w.ID] = make([]string, n)
					picks[w.ID] = make([]int64, n)
				}
				batch, pick = bufs[w.ID][:n], picks[w.ID][:n]
			} else {
				batch, pick = make([]string, n), make([]int64, n)
			}
			for i := range batch {
				k := env.Pick(w)
				batch[i], pick[i] = items[k], int64(k)
			}
			hl := rec.Log(w.ID)
			call := hl.Now()
			ds, err := b.DeductBatch(ctx, batch, 1)
			t := tallies.get(w.ID)
			if hl != nil {
				// Each deduction of the batch spans the batch's round
				// trip. When some failed, the failed ones are those left
				// zero (a unit taken or refused from a 2^40 stock reports
				// no zero); they are recorded as unknown, which is true of
				// any failure.
				ret := hl.Now()
				for i := range batch {
					var d impl.Deduction
					var derr error
					switch {
					case err == nil || ds != nil && ds[i] != (impl.Deduction{}):
						d = ds[i]
					default:
						derr = errUnknownOutcome
					}
					recordDeduction(hl, pick[i], w.Seq+int64(i), call, ret, d, derr, unknownClass)
				}
			} else if rec != nil {
				t.unrecorded += int64(n)
			}
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

// recordDeduction adds one deduction of a unit of item k to the worker's
// history (the stock counter model): answered, or of unknown outcome when
// its failure may have applied; a failure that surely did not apply is no
// operation of the history.
func recordDeduction(hl *history.Log, k, seq, call, ret int64, d impl.Deduction, err error, classify func(error) string) {
	e := history.Entry{Kind: histcheck.StockPurchase, Key: k, In: 1, In2: seq, Call: call, Return: ret}
	switch {
	case err == nil:
		e.OK, e.Out = d.OK, d.Remaining
	case impl.MayHaveApplied(classify(err)):
		e.Unknown = true
	default:
		return
	}
	hl.Add(e)
}

// errUnknownOutcome and unknownClass mark a batched deduction whose
// failure is not known to be its own: its outcome is unknown.
var errUnknownOutcome = errors.New("a deduction of a failed batch")

func unknownClass(error) string { return impl.ClassTimeout }

// loadStockHistory checks a stock.deduct load cell's history against the
// stock counter model, per item (nil when the cell recorded none).
func loadStockHistory(ctx context.Context, env *LoadEnv, rec *history.Recorder, unrecorded int64, items []string) *result.History {
	if rec == nil {
		return loadNotRecorded(env, "stock counter")
	}
	m := histcheck.Stock(func(int64) int64 { return loadStockUnits }, func(k int64) string { return items[k] })
	return histcheck.Check(ctx, m, rec.Entries(), rec.Overflow()+unrecorded, env.History)
}
