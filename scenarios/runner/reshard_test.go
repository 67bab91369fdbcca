package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// reshardSpec is the reshard fault of the tests: early, so that it lands
// mid-sale.
func reshardSpec(t *testing.T, at string) faults.Spec {
	t.Helper()
	spec, err := faults.Parse("reshard@" + at)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// checkResharded checks a cell under a reshard: the fault fired once
// without error, and the cell names the redirections its backend met.
func checkResharded(t *testing.T, c result.Cell) {
	t.Helper()
	name := c.Scenario + c.Operation + "/" + c.Backend + "/" + c.Strategy
	t.Logf("%s %s: %s", name, c.Verdict, c.Summary)
	if len(c.Faults) != 1 || c.Faults[0].Count != 1 || c.Faults[0].Error != "" {
		t.Errorf("%s: faults %+v, want one reshard, fired once, without error", name, c.Faults)
		return
	}
	if !strings.Contains(c.Faults[0].Method, "MIGRATE") {
		t.Errorf("%s: fault method %q does not say how the slots moved", name, c.Faults[0].Method)
	}
	if _, ok := c.Figures[figMoved]; !ok {
		t.Errorf("%s: no %s figure (figures %v): the backend met no redirection after its item's slot moved", name, figMoved, c.Figures)
	}
	if !strings.Contains(c.Summary, "redirections: MOVED") {
		t.Errorf("%s: summary %q does not count the redirections", name, c.Summary)
	}
}

// TestReshardUnderASale moves the item's slot to another master while a
// sale runs on the shared cluster (both backends, lua and sharded): the
// verdicts stay PASS — no unit lost or sold twice — and each cell counts
// the redirections its backend followed.
func TestReshardUnderASale(t *testing.T) {
	srv := redistest.Cluster(t)
	p := &Plan{
		Kind:      "run",
		Server:    srv,
		Backends:  impl.Backends(),
		Settings:  Settings{Concurrency: 20, Seed: 1},
		Keys:      redistest.ClusterKeyspace(t),
		Scenarios: []ScenarioCells{{Scenario: oversell(t, "--stock", "3000", "--buyers", "4000"), Strategies: []string{impl.StockLua, impl.StockSharded}}},
		Faults:    []faults.Spec{reshardSpec(t, "30ms")},
	}
	doc, err := runPlan(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Cells) != 2*len(impl.Backends()) {
		t.Fatalf("%d cells, want %d", len(doc.Cells), 2*len(impl.Backends()))
	}
	for _, c := range doc.Cells {
		if c.Verdict != result.Pass {
			t.Errorf("%s/%s: %s (%s%s), want PASS", c.Backend, c.Strategy, c.Verdict, c.Summary, c.Reason)
		}
		checkResharded(t, c)
	}
}

// TestReshardUnderLoad moves the slots of a stock.deduct load's items on
// one master while the load runs: the cell is MEASURED, the server's
// stock matches what the workers were told, and the redirections are
// counted.
func TestReshardUnderLoad(t *testing.T) {
	srv := redistest.Cluster(t)
	stock, err := scenarios.LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bench.ParseKeyDist("uniform", 30)
	if err != nil {
		t.Fatal(err)
	}
	p := &Plan{
		Kind:     "load",
		Server:   srv,
		Backends: impl.Backends(),
		Settings: Settings{Concurrency: 8, Seed: 1},
		Keys:     redistest.ClusterKeyspace(t),
		Loads:    []LoadCells{{Operation: stock, Strategies: []string{impl.StockLua}, Shape: LoadShape{Duration: 1500 * time.Millisecond, Keys: keys}}},
		Faults:   []faults.Spec{reshardSpec(t, "300ms")},
	}
	doc, err := runPlan(t, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Cells {
		if c.Verdict != result.Measured || c.Ops == 0 {
			t.Errorf("%s/%s: %s with %d ops (%s%s), want MEASURED", c.Operation, c.Backend, c.Verdict, c.Ops, c.Summary, c.Reason)
		}
		checkResharded(t, c)
		for _, f := range []string{"units_answered_ok_not_deducted", "units_deducted_beyond_possible", "stock_keys_lost", "stock_keys_negative"} {
			if v, ok := c.Figures[f]; !ok || v != 0 {
				t.Errorf("%s/%s: %s = %v (present %v), want 0", c.Operation, c.Backend, f, v, ok)
			}
		}
	}
}

// TestClusterFaultKinds: a single-server fault is refused on a cluster,
// and a cluster fault on a single server, before anything runs (Usage).
func TestClusterFaultKinds(t *testing.T) {
	srv := redistest.Server(t)
	p := &Plan{
		Kind:      "run",
		Server:    srv,
		Backends:  impl.Backends(),
		Settings:  Settings{Concurrency: 2, Seed: 1},
		Keys:      redistest.Keyspace(t),
		Scenarios: []ScenarioCells{{Scenario: oversell(t), Strategies: []string{impl.StockLua}}},
		Faults:    []faults.Spec{reshardSpec(t, "1s")},
	}
	_, err := runPlan(t, p)
	if code, _ := errext.Code(err); code != errext.Usage || !strings.Contains(err.Error(), "needs a Redis Cluster") {
		t.Fatalf("Run with a reshard on one server: %v (exit %d), want a usage error saying it needs a cluster", err, code)
	}
}
