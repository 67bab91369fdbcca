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
	return &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			_, err := stock.Deduct(ctx, items[env.Pick(w)], 1)
			return err
		},
	}, nil
}
