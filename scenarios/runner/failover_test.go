package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// ownCluster spawns a Redis Cluster for one test (a failover changes which
// nodes are masters, and a forced one stops a process): it is stopped
// when the test ends.
func ownCluster(t *testing.T) *redisenv.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a spawned Redis Cluster; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindCluster})
	if err != nil {
		t.Skipf("no Redis Cluster can be spawned (needs redis-server 7+ and redis-cli on PATH): %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})
	return srv
}

// TestFailoverUnderASale promotes the replica of the item's master while
// a sale runs (an agreed failover on go-redis, a forced one — the master
// stopped, its replica taking over — on rueidis): each cell counts the
// acknowledged writes lost, and never PASSes with one lost nor FAILs the
// strategy for the failover's loss. The agreed failover loses none.
func TestFailoverUnderASale(t *testing.T) {
	srv := ownCluster(t)
	keys, err := impl.NewKeyspace("pbtest-failover:")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		backend, spec string
	}{
		{impl.GoRedis, "failover@50ms"},
		{impl.Rueidis, "failover:force@50ms"},
	} {
		t.Run(tc.backend+" "+tc.spec, func(t *testing.T) {
			spec, err := faults.Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			p := &Plan{
				Kind:      "run",
				Server:    srv,
				Backends:  []string{tc.backend},
				Settings:  Settings{Concurrency: 16, Seed: 1},
				Keys:      keys,
				Scenarios: []ScenarioCells{{Scenario: oversell(t, "--stock", "4000", "--buyers", "12000"), Strategies: []string{impl.StockLua}}},
				Faults:    []faults.Spec{spec},
			}
			doc, err := runPlan(t, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Cells) != 1 {
				t.Fatalf("%d cells, want 1", len(doc.Cells))
			}
			c := doc.Cells[0]
			if len(c.Faults) != 1 || c.Faults[0].Count != 1 || c.Faults[0].Error != "" {
				t.Fatalf("faults %+v, want one failover, fired once, without error", c.Faults)
			}
			lost, ok := c.Figures[figAckLost]
			if !ok {
				t.Fatalf("no %s figure: %v (%s %s%s)", figAckLost, c.Figures, c.Verdict, c.Summary, c.Reason)
			}
			switch {
			case spec.Mode == "" && (c.Verdict != result.Pass || lost != 0):
				// An agreed failover waits for the replica to catch up.
				t.Errorf("agreed failover: %s with %v acknowledged writes lost (%s%s), want PASS with none", c.Verdict, lost, c.Summary, c.Reason)
			case c.Verdict == result.Pass && lost != 0:
				t.Errorf("PASS with %v acknowledged writes lost", lost)
			case c.Verdict == result.Inconclusive && (lost == 0 || !strings.Contains(c.Reason, "failover lost")):
				t.Errorf("INCONCLUSIVE with %v writes lost, for another reason than the loss: %s", lost, c.Reason)
			case c.Verdict != result.Pass && c.Verdict != result.Inconclusive:
				t.Errorf("%s under a failover (%s%s): a failover's loss is never the strategy's", c.Verdict, c.Summary, c.Reason)
			}
			t.Logf("%s under %s: %s, %v acknowledged writes lost; %s%s", c.Backend, tc.spec, c.Verdict, lost, c.Summary, c.Reason)
		})
	}
}
