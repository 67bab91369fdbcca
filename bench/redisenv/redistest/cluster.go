package redistest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
)

// The shared spawned Redis Cluster of a test binary.
var (
	clusterMu      sync.Mutex
	sharedCluster  *redisenv.Server
	clusterErr     error
	clusterStarted bool
)

// Cluster returns the test binary's shared Redis Cluster (3 masters, 3
// replicas, redisenv.KindCluster), spawning it on first use; Main stops it
// when the tests end. Spawning six nodes takes seconds: share it, and
// keep what runs on it bounded. The test is skipped under -short and when
// no cluster can be spawned (no redis-server or redis-cli on PATH), with
// the reason.
func Cluster(t testing.TB) *redisenv.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a spawned Redis Cluster; skipped in -short mode")
	}
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if !clusterStarted {
		clusterStarted = true
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		sharedCluster, clusterErr = redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindCluster})
		cancel()
	}
	if clusterErr != nil {
		t.Skipf("redistest: no Redis Cluster can be spawned (needs redis-server 7+ and redis-cli on PATH): %v", clusterErr)
	}
	return sharedCluster
}

// ClusterKeyspace is Keyspace on the shared cluster: a fresh prefix whose
// keys, on every master, are deleted when the test ends.
func ClusterKeyspace(t testing.TB) impl.Keyspace {
	t.Helper()
	s := Cluster(t)
	return keyspaceOn(t, s)
}

// stopCluster stops the shared cluster, if one was spawned.
func stopCluster() {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if sharedCluster != nil {
		if err := sharedCluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "redistest: stop the cluster: %v\n", err)
		}
	}
	sharedCluster, clusterErr, clusterStarted = nil, nil, false
}
