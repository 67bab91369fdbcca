package scenarios

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
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

// TestStockDeductHistory: a stock.deduct load with --history on records
// every deduction, single and pipelined, and checks it against the stock
// counter model: lua is linearizable, the seed's naive read-then-write
// tells several buyers the same remainder; a worker beyond the recorder's
// logs leaves the history incomplete, which says so (never linearizable);
// with history off nothing is recorded.
func TestStockDeductHistory(t *testing.T) {
	op, err := LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	const conc, requests = 8, 400
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			name     string
			strategy string
			batch    int
			workers  int
			mode     histcheck.Mode
			want     string
		}{
			{"lua", impl.StockLua, 1, conc, histcheck.ModeOn, result.HistoryLinearizable},
			{"lua pipelined", impl.StockLua, 8, conc, histcheck.ModeOn, result.HistoryLinearizable},
			{"naive", impl.StockNaive, 1, conc, histcheck.ModeOn, result.HistoryNotLinearizable},
			{"fewer logs than workers", impl.StockLua, 1, conc / 2, histcheck.ModeOn, result.HistoryUnknown},
			{"off", impl.StockLua, 1, conc, histcheck.ModeOff, ""},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				env := testEnvC(t, backend, conc)
				lenv := &LoadEnv{Backend: env.Backend, Admin: env.Admin, Open: env.Open, Keys: env.Keys, KeyCount: 1,
					Pick: func(*bench.Worker) int { return 0 }, Workers: tc.workers, History: histcheck.Options{Mode: tc.mode}, HistoryOps: requests}
				load, err := op.Setup(t.Context(), lenv, tc.strategy)
				if err != nil {
					t.Fatal(err)
				}
				run := load.Op
				if tc.batch > 1 {
					run = func(ctx context.Context, w *bench.Worker) error { return load.Batch(ctx, w, w.N) }
				}
				if _, err := bench.Run(t.Context(), bench.Config{Concurrency: conc, Requests: requests, Batch: tc.batch, Seed: 1}, run); err != nil {
					t.Fatal(err)
				}
				h := load.History(t.Context())
				if tc.want == "" {
					if h != nil {
						t.Fatalf("history off recorded %+v", h)
					}
					return
				}
				if h == nil || h.Result != tc.want {
					t.Fatalf("history %+v, want %s", h, tc.want)
				}
				if tc.want == result.HistoryUnknown {
					if !strings.Contains(h.Reason, "did not fit") {
						t.Fatalf("an incomplete history must say so: %+v", h)
					}
					return
				}
				if h.Ops != requests || h.Partitions != 1 {
					t.Fatalf("history of %d operations in %d partitions, want %d in 1", h.Ops, h.Partitions, requests)
				}
				if tc.want == result.HistoryNotLinearizable && !strings.Contains(h.Witness, "told") {
					t.Fatalf("witness %q", h.Witness)
				}
			})
		}
	}
}

// TestRecordDeductionDoesNotAllocate: recording a deduction, the hot path
// stock.deduct adds with --history on, allocates nothing.
func TestRecordDeductionDoesNotAllocate(t *testing.T) {
	rec := history.New(history.Options{Clients: 1, PerClient: 1000})
	hl := rec.Log(0)
	classify := func(error) string { return impl.ClassTimeout }
	if n := testing.AllocsPerRun(500, func() {
		call := hl.Now()
		recordDeduction(hl, 0, 1, call, hl.Now(), impl.Deduction{OK: true, Remaining: 7}, nil, classify)
	}); n != 0 {
		t.Fatalf("%v allocations per recorded deduction", n)
	}
}

// BenchmarkRecordDeduction measures what --history adds to one
// stock.deduct operation of a load: two monotonic clock reads and the
// entry appended to the worker's log (the Redis call itself excluded).
func BenchmarkRecordDeduction(b *testing.B) {
	rec := history.New(history.Options{Clients: 1, PerClient: b.N + 1})
	hl := rec.Log(0)
	d := impl.Deduction{OK: true, Remaining: 7}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		call := hl.Now()
		recordDeduction(hl, 0, int64(i), call, hl.Now(), d, nil, nil)
	}
}
