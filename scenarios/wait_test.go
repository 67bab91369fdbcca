package scenarios

import (
	"context"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/reports/result"
)

// TestOversellWaitUnconfirmed: with --wait-replicas 1 on a server without
// replicas, every purchase answered OK is counted unconfirmed, none lost,
// and the verdict stays PASS (the masters hold every write); a strategy
// that sends no WAIT has no such figure.
func TestOversellWaitUnconfirmed(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			verdict  result.Verdict
			waits    bool
		}{
			{impl.StockLua, result.Pass, true},
			{impl.StockWatch, result.Pass, true},
			{impl.StockNaive, result.Reproduced, false},
		} {
			t.Run(backend+"/"+tc.strategy, func(t *testing.T) {
				srv := redistest.Server(t)
				cfg := impl.ConnConfig{URL: srv.URL, Password: srv.Password, WaitReplicas: 1, WaitTimeout: 2 * time.Millisecond}
				be, err := backends.Open(context.Background(), backend, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { be.Close() })
				env := &Env{
					Backend: be,
					Open:    func(ctx context.Context) (impl.Backend, error) { return backends.Open(ctx, backend, cfg) },
					Admin:   srv.Admin(),
					Keys:    redistest.Keyspace(t),
					Common:  Common{Concurrency: 8, Seed: 1},
				}
				o := newOversell()
				o.Stock, o.Buyers = 40, 60
				cell := runJudged(t, o, env, tc.strategy)
				if cell.Verdict != tc.verdict {
					t.Fatalf("verdict %s (%s), want %s", cell.Verdict, cell.Summary, tc.verdict)
				}
				got, ok := cell.Figures[figWritesUnconfirmed]
				if ok != tc.waits {
					t.Fatalf("%s present %v, want %v", figWritesUnconfirmed, ok, tc.waits)
				}
				if tc.waits && (got != cell.Figures["orders"] || got == 0 || cell.Figures[figLostWaitConfirmed] != 0) {
					t.Fatalf("%s %v, %s %v, of %v purchases answered OK: want all unconfirmed, none lost",
						figWritesUnconfirmed, got, figLostWaitConfirmed, cell.Figures[figLostWaitConfirmed], cell.Figures["orders"])
				}
			})
		}
	}
}
