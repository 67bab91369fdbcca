package rueidis_test

import (
	"testing"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl/impltest"
)

// The conformance suite of every family against the test binary's shared
// spawned Redis Cluster (impltest.Cluster), the backend in cluster mode:
// one test per family, so that each stays short.

func TestClusterBackend(t *testing.T) { impltest.RunBackend(t, impltest.Cluster(t), open) }

// rueidis's cluster client closes its node connections asynchronously
// (v1.0.79): a command right after Close may still be served.
func TestClusterStock(t *testing.T) {
	env := impltest.Cluster(t)
	env.CloseIsAsync = true
	impltest.RunStock(t, env, open)
}

func TestClusterStockBatch(t *testing.T) { impltest.RunStockBatch(t, impltest.Cluster(t), open) }

func TestClusterOrders(t *testing.T) { impltest.RunOrders(t, impltest.Cluster(t), openForOrders) }

func TestClusterLock(t *testing.T) { impltest.RunLock(t, impltest.Cluster(t), open) }

func TestClusterLimit(t *testing.T) { impltest.RunLimit(t, impltest.Cluster(t), open) }

func TestClusterDedupe(t *testing.T) { impltest.RunDedupe(t, impltest.Cluster(t), open) }

func TestClusterCache(t *testing.T) { impltest.RunCache(t, impltest.Cluster(t), open) }

func TestClusterScript(t *testing.T) { impltest.RunScript(t, impltest.Cluster(t), open) }

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

// TestClusterRedirects: rueidis's cluster client follows ASK and MOVED
// and never re-sends a write after a lost reply.
func TestClusterRedirects(t *testing.T) { impltest.RunClusterRedirects(t, impltest.Cluster(t), open) }
