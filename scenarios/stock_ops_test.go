package scenarios

import (
	"context"
	"sync"
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

// TestStockDeductCountsOutcomesApart: the figures count deductions that
// took a unit, refusals and failures apart, and a seeded stock key that
// vanished is reported, never taken for 2^40 units deducted.
func TestStockDeductCountsOutcomesApart(t *testing.T) {
	op, err := LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	const conc, requests = 4, 400
	for _, backend := range impl.Backends() {
		for _, strategy := range op.Strategies {
			for _, tc := range []struct {
				name string
				lose bool // delete item 0's stock once half the operations ran
			}{{"healthy", false}, {"stock key lost", true}} {
				if tc.lose && strategy == impl.StockNaive {
					continue // naive's writes in flight put a stale stock back: nothing is lost to see
				}
				t.Run(backend+"/"+strategy+"/"+tc.name, func(t *testing.T) {
					env := testEnvC(t, backend, conc)
					lenv := &LoadEnv{Backend: env.Backend, Admin: env.Admin, Open: env.Open, Keys: env.Keys, KeyCount: 2,
						Pick: func(w *bench.Worker) int { return int(w.Seq % 2) }, Workers: conc}
					load, err := op.Setup(t.Context(), lenv, strategy)
					if err != nil {
						t.Fatal(err)
					}
					var once sync.Once
					st, err := bench.Run(t.Context(), bench.Config{Concurrency: conc, Requests: requests, Seed: 1},
						func(ctx context.Context, w *bench.Worker) error {
							if tc.lose && w.Seq >= requests/2 {
								once.Do(func() { // a stand-in for a restarted server
									keys, _ := env.Admin.Keys(context.WithoutCancel(ctx), env.Keys.Prefix()+"stock:{item-0*").Result() // every layout: stock:{item-0}…, sharded-slots' stock:{item-0:<i>:<salt>}
									env.Admin.Del(context.WithoutCancel(ctx), keys...)
								})
							}
							return load.Op(ctx, w)
						})
					if err != nil {
						t.Fatal(err)
					}
					f, err := load.Figures(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%v", f)
					ok, refused := f["purchases_ok"], f["purchases_refused"]
					if ok+refused+f["purchases_unknown"]+f["purchases_failed"] != requests || st.ErrorCount() != 0 {
						t.Errorf("%v ok + %v refused + unknown + failed != %d (errors %v)", ok, refused, requests, st.Errors)
					}
					deducted, reported := f["units_deducted_server"]
					switch {
					case !tc.lose && strategy == impl.StockNaive:
						// naive loses updates: fewer units deducted than answered OK, and said so.
						if ok != requests || refused != 0 || !reported || deducted > requests || f["units_answered_ok_not_deducted"] != requests-deducted {
							t.Errorf("healthy naive run: %v", f)
						}
					case !tc.lose:
						if ok != requests || refused != 0 || !reported || deducted != requests || f["stock_keys_lost"] != 0 {
							t.Errorf("healthy run: %v", f)
						}
					default:
						if reported {
							t.Errorf("units_deducted_server %v reported for a lost stock", deducted)
						}
						if f["stock_keys_lost"]+f["stock_keys_below_possible"] == 0 || refused == 0 || ok == 0 {
							t.Errorf("lost stock not reported, or refusals counted as deductions: %v", f)
						}
					}
				})
			}
		}
	}
}
