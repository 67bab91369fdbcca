// Package impltest is the conformance suite of paybench's operation
// contracts: one set of table-driven tests that every client backend
// (impl/goredis, impl/rueidis) runs against a real Redis from its own
// _test.go, so that both libraries are held to exactly the same behaviour.
//
// A backend's test calls, for example:
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
//
//	func TestStock(t *testing.T) {
//		impltest.RunStock(t, impltest.Redis(t), open)
//	}
//
// where open is the backend's impl.Opener; impltest.Cluster(t) in place
// of impltest.Redis(t) runs the same suite against a spawned Redis
// Cluster, the backend in cluster mode. The suite asserts exact
// post-conditions read back from the server through a neutral go-redis
// client (Env.Admin), never through the backend under test.
package impltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
)

// Env is the Redis a suite runs against.
type Env struct {
	// Name describes the server in logs (kind, address, version).
	Name string
	// Kind says where the server comes from. Tests that change the
	// server's configuration (maxmemory, killing connections) run only on
	// a server the test binary spawned for itself (redisenv.KindSpawn).
	Kind redisenv.Kind
	// Conn is how backends under test connect.
	Conn impl.ConnConfig
	// Admin is a neutral go-redis client on the same server, used to set
	// up and verify state (reading raw keys, SCRIPT FLUSH); it is never the
	// backend under test.
	Admin redis.UniversalClient
	// Keyspace returns a fresh keyspace for one test; its keys are deleted
	// when the test ends.
	Keyspace func(t *testing.T) impl.Keyspace
	// Lacks lists the strategies the backend under test documents it
	// cannot offer (its library has no way to): they must answer
	// impl.ErrNotSupported, and every other strategy must work. The
	// suites hold no backend's name.
	Lacks []string
	// CloseIsAsync says the backend's Close returns before every
	// connection is closed, so that a call right after it may still reach
	// the server (rueidis's cluster client closes its node connections in
	// goroutines and was seen answering after Close): tests that use a
	// closed backend to prove a call never reached Redis make no valid
	// call on it.
	CloseIsAsync bool
}

// Lacking returns env with strategies added to Lacks.
func (env Env) Lacking(strategies ...string) Env {
	env.Lacks = append(append([]string(nil), env.Lacks...), strategies...)
	return env
}

// Cluster returns an Env on the test binary's shared spawned Redis
// Cluster (redistest.Cluster: 3 masters, 3 replicas); backends connect in
// cluster mode (impl.ConnConfig.Cluster) and Admin is a cluster client, so
// every family is held to a cluster as to one server. The test binary's
// TestMain must call redistest.Main. It skips the test under -short and
// where no cluster can be spawned, saying why.
func Cluster(t *testing.T) Env {
	t.Helper()
	srv := redistest.Cluster(t)
	return Env{
		Name:     srv.String(),
		Kind:     srv.Kind,
		Conn:     impl.ConnConfig{URL: srv.URL, Password: srv.Password, Cluster: true},
		Admin:    srv.Admin(),
		Keyspace: func(t *testing.T) impl.Keyspace { return redistest.ClusterKeyspace(t) },
	}
}

// embeddedStartTimeout bounds starting an embedded server.
const embeddedStartTimeout = 15 * time.Second

// Redis returns an Env on the test binary's shared Redis from
// bench/redisenv/redistest (a redis-server spawned from PATH unless
// $REDIS_URL or $PAYBENCH_TEST_REDIS says otherwise); each Keyspace is a
// fresh redistest prefix. The test binary's TestMain must call
// redistest.Main. It skips the test under -short, as redistest does.
func Redis(t *testing.T) Env {
	t.Helper()
	srv := redistest.Server(t)
	return Env{
		Name:     srv.String(),
		Kind:     srv.Kind,
		Conn:     impl.ConnConfig{URL: srv.URL, Password: srv.Password},
		Admin:    srv.Admin(),
		Keyspace: func(t *testing.T) impl.Keyspace { return redistest.Keyspace(t) },
	}
}

// Embedded returns an Env on an in-process miniredis of its own, started
// for the calling test and stopped when it ends, so that every backend is
// also held to the embedded server paybench falls back to. It runs under
// -short too.
func Embedded(t *testing.T) Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), embeddedStartTimeout)
	defer cancel()
	srv, err := redisenv.Provide(ctx, redisenv.Options{
		Force:  redisenv.KindEmbedded,
		Getenv: func(string) string { return "" },
		Warn:   io.Discard,
	})
	if err != nil {
		t.Fatalf("start an embedded Redis: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop the embedded Redis: %v", err)
		}
	})
	admin := srv.Admin()
	return Env{
		Name:  srv.String(),
		Kind:  srv.Kind,
		Conn:  impl.ConnConfig{URL: srv.URL, Password: srv.Password},
		Admin: admin,
		Keyspace: func(t *testing.T) impl.Keyspace {
			t.Helper()
			ks := impl.MustKeyspace("pb:test:" + randomHex(6) + ":")
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := redisenv.DeletePrefix(ctx, admin, ks); err != nil {
					t.Errorf("delete test keys: %v", err)
				}
			})
			return ks
		},
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
