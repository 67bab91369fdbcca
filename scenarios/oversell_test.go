package scenarios

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/reports/result"
)

// testEnv opens the named backend on the test server under a fresh
// keyspace, with 50 workers.
func testEnv(t *testing.T, backend string) *Env {
	t.Helper()
	return testEnvC(t, backend, 50)
}

// testEnvC is testEnv with concurrency workers.
func testEnvC(t *testing.T, backend string, concurrency int) *Env {
	t.Helper()
	srv := redistest.Server(t)
	ctx := context.Background()
	cfg := impl.ConnConfig{URL: srv.URL, Password: srv.Password}
	be, err := backends.Open(ctx, backend, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return &Env{
		Backend: be,
		Open:    func(ctx context.Context) (impl.Backend, error) { return backends.Open(ctx, backend, cfg) },
		Admin:   srv.Admin(),
		Keys:    redistest.Keyspace(t),
		Common:  Common{Concurrency: concurrency, Seed: 1},
	}
}

// runJudged runs one cell of s and judges it as the command line does.
func runJudged(t *testing.T, s Scenario, env *Env, strategy string) result.Cell {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	st, ok := FindStrategy(s, strategy)
	if !ok {
		t.Fatalf("no strategy %q", strategy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cell, err := s.Run(ctx, env, strategy)
	if err != nil {
		t.Fatalf("%s: %v", strategy, err)
	}
	cell.Expect = st.Expect
	cell.Judge()
	return cell
}

func TestOversellVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			quantity string
			want     result.Verdict
		}{
			{impl.StockNaive, "1", result.Reproduced},
			{impl.StockDecr, "1", result.Reproduced},
			{impl.StockWatch, "1", result.Pass},
			{impl.StockLua, "1", result.Pass},
			{impl.StockIdempotent, "1", result.Pass},
			{impl.StockSharded, "1", result.Pass},
			{impl.StockWatch, "3", result.Pass},
			{impl.StockLua, "3", result.Pass},
			{impl.StockSharded, "3", result.Pass},
			{impl.StockLua, "1-4", result.Pass},
			{impl.StockIdempotent, "1-4", result.Pass},
			{impl.StockSharded, "1-4", result.Pass},
		} {
			t.Run(backend+"/"+tc.strategy+"/q="+tc.quantity, func(t *testing.T) {
				o := newOversell()
				o.quantity = tc.quantity
				cell := runJudged(t, o, testEnv(t, backend), tc.strategy)
				if cell.Verdict != tc.want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, tc.want, cell.Summary, cell.Invariants)
				}
				sold, final := cell.Figures["units_sold"], cell.Figures["stock_final"]
				if tc.want == result.Pass && sold+final != float64(o.Stock) {
					t.Fatalf("sold %v + final %v != %d", sold, final, o.Stock)
				}
				if cell.Ops != o.Buyers || cell.Latency.Corrected.Count != o.Buyers {
					t.Fatalf("ops %d, latency count %d, want %d", cell.Ops, cell.Latency.Corrected.Count, o.Buyers)
				}
				// Both judges agree: the history (what every buyer and read was
				// told) is linearizable exactly when the invariants held.
				wantHist := result.HistoryLinearizable
				if tc.want == result.Reproduced {
					wantHist = result.HistoryNotLinearizable
				}
				h := cell.History
				if h == nil || h.Result != wantHist {
					t.Fatalf("history %+v, want %s", h, wantHist)
				}
				if h.Ops < o.Buyers {
					t.Fatalf("history of %d operations, want at least the %d purchases", h.Ops, o.Buyers)
				}
				if wantHist == result.HistoryNotLinearizable && (h.Witness == "" || len(h.WitnessOps) == 0 || len(h.Page) == 0) {
					t.Fatalf("a violation without its witness or visualization: %+v", h)
				}
			})
		}
	}
}

func TestOversellValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(o *Oversell)
	}{
		{"zero quantity", func(o *Oversell) { o.quantity = "0" }},
		{"reversed range", func(o *Oversell) { o.quantity = "4-2" }},
		{"not a number", func(o *Oversell) { o.quantity = "two" }},
		{"negative stock", func(o *Oversell) { o.Stock = -1 }},
		{"no buyers", func(o *Oversell) { o.Buyers = 0 }},
		{"negative think", func(o *Oversell) { o.Think = -time.Millisecond }},
		{"zero shards", func(o *Oversell) { o.Shards = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOversell()
			tc.edit(o)
			if err := o.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestOversellJudgementFailureKeepsFigures: when paybench's own reads of
// the server fail (the sampler, the read-back), the cell comes back with
// everything it measured and an error marking the judgement incomplete,
// never a verdict.
func TestOversellJudgementFailureKeepsFigures(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, strategy := range []string{impl.StockLua, impl.StockSharded} {
			t.Run(backend+"/"+strategy, func(t *testing.T) {
				env := testEnv(t, backend)
				// An admin client on a port nothing listens on: every read
				// paybench makes to judge fails; the sale itself does not.
				dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
				t.Cleanup(func() { _ = dead.Close() })
				env.Admin = dead
				o := newOversell()
				if err := o.Validate(); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cell, err := o.Run(ctx, env, strategy)
				if !errors.Is(err, ErrJudgement) {
					t.Fatalf("error %v, want a judgement error", err)
				}
				if cell.Ops != o.Buyers || cell.Latency.Corrected.Count != o.Buyers {
					t.Errorf("measurements discarded: ops %d, latency count %d", cell.Ops, cell.Latency.Corrected.Count)
				}
				if cell.Figures["purchases_ok"] != float64(o.Stock) || cell.Figures["purchases_refused"] != float64(o.Buyers-o.Stock) {
					t.Errorf("figures: %v", cell.Figures)
				}
				if len(cell.Invariants) != 0 {
					t.Errorf("invariants judged without the server: %v", cell.Invariants)
				}
				t.Logf("%v; summary %q", err, cell.Summary)
			})
		}
	}
}
