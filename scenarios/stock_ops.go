package scenarios

import (
	"context"
	"fmt"
	"strconv"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
)

func init() {
	RegisterOperation(Operation{
		Name:        "stock.deduct",
		Description: "deduct one unit of stock from an item (restocked so it never runs out)",
		Strategies:  []string{impl.StockLua, impl.StockNaive, impl.StockDecr, impl.StockWatch, impl.StockSharded},
		Setup:       setupStockDeduct,
	})
}

// loadStockUnits is the stock each item starts with in a load run: large
// enough that no run empties it, so every deduction does the full work.
const loadStockUnits = 1 << 40

// maxFigureItems bounds the items whose stock is read back for the
// figures after a load run.
const maxFigureItems = 10_000

func setupStockDeduct(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	sb, ok := env.Backend.(impl.StockBackend)
	if !ok {
		return nil, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	stock, err := sb.Stock(strategy, impl.StockOptions{Keys: env.Keys})
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
	load := &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			_, err := stock.Deduct(ctx, items[env.Pick(w)], 1)
			return err
		},
		Figures: func(ctx context.Context) (map[string]float64, error) {
			if len(items) > maxFigureItems {
				return nil, nil
			}
			var taken int64
			for _, it := range items {
				n, err := stock.Get(ctx, it)
				if err != nil {
					return nil, err
				}
				taken += loadStockUnits - n
			}
			// Warm-up deductions included: the server's count of what the
			// whole run applied.
			return map[string]float64{"units_deducted_server": float64(taken)}, nil
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
			_, err := b.DeductBatch(ctx, batch, 1)
			return err
		}
	}
	return load, nil
}
