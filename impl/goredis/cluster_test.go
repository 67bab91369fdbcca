package goredis_test

import (
	"testing"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/impltest"
)

// TestCluster runs the conformance suite of every family against the
// shared spawned Redis Cluster, the backend in cluster mode.
func TestCluster(t *testing.T) {
	env := impltest.Cluster(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, impltest.Env)
	}{
		{"Backend", func(t *testing.T, env impltest.Env) { impltest.RunBackend(t, env, open) }},
		{"Stock", func(t *testing.T, env impltest.Env) { impltest.RunStock(t, env, open) }},
		{"StockBatch", func(t *testing.T, env impltest.Env) { impltest.RunStockBatch(t, env, open) }},
		{"Orders", func(t *testing.T, env impltest.Env) { impltest.RunOrders(t, env, openForOrders) }},
		{"Lock", func(t *testing.T, env impltest.Env) { impltest.RunLock(t, env, open) }},
		{"Limit", func(t *testing.T, env impltest.Env) { impltest.RunLimit(t, env, open) }},
		{"Dedupe", func(t *testing.T, env impltest.Env) { impltest.RunDedupe(t, env, open) }},
		{"Cache", func(t *testing.T, env impltest.Env) { impltest.RunCache(t, env.Lacking(impl.CacheClientSide), open) }},
		{"Script", func(t *testing.T, env impltest.Env) { impltest.RunScript(t, env, open) }},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, env) })
	}
}

// TestClusterModeRefusesASingleServer: a backend told to drive a cluster
// does not quietly run against a server that is not one.
func TestClusterModeRefusesASingleServer(t *testing.T) {
	env := impltest.Redis(t)
	if env.Kind == redisenv.KindEmbedded {
		t.Skip("miniredis answers CLUSTER SLOTS as a one-node cluster")
	}
	cfg := env.Conn
	cfg.Cluster = true
	b, err := open(t.Context(), cfg)
	if err == nil {
		_ = b.Close()
		t.Fatalf("open %s in cluster mode: no error", env.Name)
	}
}
