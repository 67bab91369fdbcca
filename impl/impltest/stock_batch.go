package impltest

import (
	"context"
	"errors"
	"strconv"
	"testing"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// batchStrategies are the stock strategies that must offer
// impl.StockBatcher on every backend.
var batchStrategies = []string{impl.StockLua, impl.StockIdempotent, impl.StockDecr}

// RunStockBatch runs the conformance tests of impl.StockBatcher: for each
// strategy that pipelines, a batch gives the same answers and leaves the
// same stock as the same deductions made one by one, survives a flushed
// script cache, reports a failing item without failing the others, and
// refuses a bad quantity before any Redis call.
func RunStockBatch(t *testing.T, env Env, open impl.Opener) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	be, err := open(ctx, env.Conn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	for _, strategy := range batchStrategies {
		c := stockCase{env: env, open: open, backend: be, strategy: strategy}
		batcher := func(t *testing.T) (impl.Stock, impl.StockBatcher, impl.Keyspace) {
			t.Helper()
			s, ks := c.stock(t, nil)
			b, ok := s.(impl.StockBatcher)
			if !ok {
				t.Fatalf("%s %s does not implement impl.StockBatcher", be.Name(), strategy)
			}
			return s, b, ks
		}
		t.Run(strategy, func(t *testing.T) {
			t.Run("same as one by one", func(t *testing.T) {
				s, b, ks := batcher(t)
				odd := "a{b}:c d"
				for item, units := range map[string]int64{"a": 5, "b": 1, odd: 3} {
					if err := s.Set(ctx, item, units); err != nil {
						t.Fatal(err)
					}
				}
				got, err := b.DeductBatch(ctx, []string{"a", "a", "b", "b", odd, "a"}, 1)
				if err != nil {
					t.Fatalf("DeductBatch: %v", err)
				}
				refusedLeft := int64(0)
				if strategy == impl.StockDecr {
					refusedLeft = -1 // decr reports what DECRBY returned
				}
				want := []impl.Deduction{
					{OK: true, Remaining: 4}, {OK: true, Remaining: 3},
					{OK: true, Remaining: 0}, {OK: false, Remaining: refusedLeft},
					{OK: true, Remaining: 2}, {OK: true, Remaining: 2},
				}
				if len(got) != len(want) {
					t.Fatalf("got %d results, want %d", len(got), len(want))
				}
				for i := range want {
					if got[i].OK != want[i].OK || got[i].Remaining != want[i].Remaining {
						t.Errorf("result %d = %+v, want %+v", i, got[i], want[i])
					}
				}
				for item, units := range map[string]int64{"a": 2, "b": 0, odd: 2} {
					if n := rawStock(t, ctx, env.Admin, impl.StockKey(ks, item)); n != units {
						t.Errorf("stock of %q is %d on the server, want %d", item, n, units)
					}
				}
			})
			t.Run("script cache flushed", func(t *testing.T) {
				s, b, ks := batcher(t)
				if err := s.Set(ctx, "x", 10); err != nil {
					t.Fatal(err)
				}
				if err := env.Admin.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				if _, err := b.DeductBatch(ctx, []string{"x", "x", "x"}, 2); err != nil {
					t.Fatalf("DeductBatch after SCRIPT FLUSH: %v", err)
				}
				if n := rawStock(t, ctx, env.Admin, impl.StockKey(ks, "x")); n != 4 {
					t.Fatalf("stock %d, want 4", n)
				}
			})
			t.Run("one item fails, the others apply", func(t *testing.T) {
				s, b, ks := batcher(t)
				if err := s.Set(ctx, "ok", 10); err != nil {
					t.Fatal(err)
				}
				if err := env.Admin.RPush(ctx, impl.StockKey(ks, "list"), "x").Err(); err != nil {
					t.Fatal(err)
				}
				got, err := b.DeductBatch(ctx, []string{"ok", "list", "ok"}, 1)
				var be *impl.BatchError
				if !errors.As(err, &be) || be.Failed != 1 || be.Total != 3 || be.FailedCount() != 1 {
					t.Fatalf("err = %v, want a BatchError with 1 of 3 failed", err)
				}
				if len(got) != 3 || !got[0].OK || !got[2].OK || got[2].Remaining != 8 {
					t.Fatalf("results %+v", got)
				}
				if n := rawStock(t, ctx, env.Admin, impl.StockKey(ks, "ok")); n != 8 {
					t.Fatalf("stock %d, want 8", n)
				}
			})
			t.Run("bad quantity", func(t *testing.T) {
				_, b, _ := batcher(t)
				for _, q := range []int64{0, -1, impl.MaxQuantity + 1} {
					if _, err := b.DeductBatch(ctx, []string{"x"}, q); !errors.Is(err, impl.ErrInvalidQuantity) {
						t.Errorf("qty %d: err = %v, want ErrInvalidQuantity", q, err)
					}
				}
			})
			t.Run("cancelled", func(t *testing.T) {
				_, b, _ := batcher(t)
				cctx, ccancel := context.WithCancel(ctx)
				ccancel()
				if _, err := b.DeductBatch(cctx, []string{"x", "y"}, 1); err == nil {
					t.Fatal("a cancelled batch succeeded")
				}
			})
		})
	}
}

// rawStock reads a stock counter through the neutral client.
func rawStock(t *testing.T, ctx context.Context, admin redis.UniversalClient, key string) int64 {
	t.Helper()
	v, err := admin.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("GET %s = %q: %v", key, v, err)
	}
	return n
}
