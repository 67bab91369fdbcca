package scenarios

import (
	"context"
	"testing"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
)

// TestStockDeductBatch drives stock.deduct's pipelined form with and
// without a known worker count (reused per-worker buffers, or a fresh one
// per batch) and checks the server applied every deduction.
func TestStockDeductBatch(t *testing.T) {
	op, err := LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	const conc, batch, requests = 4, 8, 400
	for _, backend := range []string{impl.GoRedis, impl.Rueidis} {
		for _, tc := range []struct {
			name    string
			workers int
		}{{"known-workers", conc}, {"unknown-workers", 0}, {"fewer-slots", 2}} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				env := testEnvC(t, backend, conc)
				lenv := &LoadEnv{Backend: env.Backend, Admin: env.Admin, Open: env.Open, Keys: env.Keys, KeyCount: 3,
					Pick: func(w *bench.Worker) int { return w.Rand.IntN(3) }, Workers: tc.workers}
				load, err := op.Setup(t.Context(), lenv, impl.StockLua)
				if err != nil {
					t.Fatal(err)
				}
				if load.Batch == nil {
					t.Fatal("lua stock has no Batch")
				}
				st, err := bench.Run(t.Context(), bench.Config{Concurrency: conc, Requests: requests, Batch: batch, Seed: 1},
					func(ctx context.Context, w *bench.Worker) error { return load.Batch(ctx, w, w.N) })
				if err != nil {
					t.Fatal(err)
				}
				if st.ErrorCount() != 0 {
					t.Fatalf("%d errors %v", st.ErrorCount(), st.Errors)
				}
				f, err := load.Figures(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if got := f["units_deducted_server"]; got != requests {
					t.Errorf("server deducted %v units, want %d", got, requests)
				}
			})
		}
	}
}
