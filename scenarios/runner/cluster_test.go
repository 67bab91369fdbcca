package runner

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// TestRunOnACluster runs oversell (the seed's naive code and the lua,
// sharded and sharded-slots strategies) and a stock.deduct load over 100
// items on the shared spawned cluster, both backends in cluster mode: the
// verdicts are those of one server, the result names the 6 nodes, and
// each cell says which master held its stock (sharded-slots: every
// master); the fairness block names each client's routing options; the
// run's keys are gone from every master afterwards.
func TestRunOnACluster(t *testing.T) {
	srv := redistest.Cluster(t)
	p := &Plan{
		Kind:     "run",
		Server:   srv,
		Backends: impl.Backends(),
		Settings: Settings{Concurrency: 50, Seed: 1},
		Keys:     redistest.ClusterKeyspace(t),
	}
	p.Scenarios = []ScenarioCells{{Scenario: oversell(t), Strategies: []string{impl.StockNaive, impl.StockLua, impl.StockSharded, impl.StockShardedSlots}}}
	stock, err := scenarios.LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	// 100 items: the load and its read-back span every master.
	keys, err := bench.ParseKeyDist("uniform", 100)
	if err != nil {
		t.Fatal(err)
	}
	p.Loads = []LoadCells{{Operation: stock, Strategies: []string{impl.StockLua}, Shape: LoadShape{Requests: 300, Keys: keys}}}
	doc, err := runPlan(t, p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]result.Verdict{
		impl.StockNaive:   result.Reproduced,
		impl.StockLua:     result.Pass,
		impl.StockSharded: result.Pass,
		// The item's 8 shards in 8 slots, spread over the 3 masters.
		impl.StockShardedSlots: result.Pass,
	}
	for _, c := range doc.Cells {
		if c.Operation != "" {
			if c.Verdict != result.Measured || c.Ops == 0 {
				t.Errorf("%s/%s: %s with %d ops, want MEASURED", c.Operation, c.Backend, c.Verdict, c.Ops)
			}
		} else if c.Verdict != want[c.Strategy] {
			t.Errorf("%s/%s/%s: %s (%s%s), want %s", c.Scenario, c.Backend, c.Strategy, c.Verdict, c.Summary, c.Reason, want[c.Strategy])
		}
		switch {
		case c.Strategy == impl.StockShardedSlots && len(c.ClusterStockKeys) != redisenv.ClusterMasters:
			t.Errorf("%s/%s: stock keys on %v, want every master", c.Backend, c.Strategy, c.ClusterStockKeys)
		case c.Strategy == impl.StockShardedSlots:
		case c.Operation == "" && len(c.ClusterStockKeys) != 1:
			t.Errorf("%s/%s: stock keys on %v, want one master (the item's)", c.Backend, c.Strategy, c.ClusterStockKeys)
		case c.Operation != "" && len(c.ClusterStockKeys) != redisenv.ClusterMasters:
			t.Errorf("%s/%s: 100 items' stock keys on %v, want every master", c.Operation, c.Backend, c.ClusterStockKeys)
		}
		if len(c.ClusterKeys) == 0 {
			t.Errorf("%s/%s: no cluster_keys", c.Backend, c.Strategy)
		}
		var commands int64
		for _, n := range c.ClusterCommands {
			commands += n
		}
		if len(c.ClusterCommands) != redisenv.ClusterMasters || commands < c.Ops {
			t.Errorf("%s/%s: cluster_commands %v for %d operations, want every master and at least one command per operation", c.Backend, c.Strategy, c.ClusterCommands, c.Ops)
		}
	}
	nodes := doc.Fairness.Server.Nodes
	masters := 0
	for _, n := range nodes {
		if n.Role == "master" {
			masters++
		}
	}
	if len(nodes) != 2*redisenv.ClusterMasters || masters != redisenv.ClusterMasters || doc.Fairness.Server.Mode != "cluster" {
		t.Errorf("server: mode %q, %d nodes (%d masters), want a cluster of 6 (3 masters)", doc.Fairness.Server.Mode, len(nodes), masters)
	}
	for name, set := range doc.Fairness.Clients {
		if set[impl.SettingCluster] == "" {
			t.Errorf("client %s: settings do not name its cluster client: %v", name, set)
		}
		// The routing options as the client was built.
		routing := map[string][]string{
			impl.GoRedis: {"cluster_read_only", "cluster_route_by_latency", "cluster_route_randomly", "cluster_max_redirects"},
			impl.Rueidis: {"cluster_replica_only", "cluster_send_to_replicas", "cluster_max_redirects"},
		}
		for _, k := range routing[name] {
			if set[k] == "" {
				t.Errorf("client %s: no %s in its settings: %v", name, k, set)
			}
		}
	}
	left, err := srv.KeysPerMaster(t.Context(), p.Keys.Pattern())
	if err != nil || len(left) != 0 {
		t.Errorf("keys left under the run prefix: %v, %v", left, err)
	}
}

// TestClusterRefusesFaults: a fault acts on one server; on a cluster the
// plan is refused (Usage) before anything runs.
func TestClusterRefusesFaults(t *testing.T) {
	srv := redistest.Cluster(t)
	spec, err := faults.Parse("pause:1s@1s")
	if err != nil {
		t.Fatal(err)
	}
	p := &Plan{
		Kind:      "run",
		Server:    srv,
		Backends:  impl.Backends(),
		Settings:  Settings{Concurrency: 2, Seed: 1},
		Keys:      redistest.ClusterKeyspace(t),
		Scenarios: []ScenarioCells{{Scenario: oversell(t), Strategies: []string{impl.StockLua}}},
		Faults:    []faults.Spec{spec},
	}
	_, err = runPlan(t, p)
	if code, _ := errext.Code(err); code != errext.Usage || !strings.Contains(err.Error(), "Redis Cluster") {
		t.Fatalf("Run with a fault on a cluster: %v (exit %d), want a usage error naming the cluster", err, code)
	}
}
