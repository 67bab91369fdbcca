// Package redistest gives tests a Redis: one server per test binary,
// started lazily on first use and stopped when the tests end, and a fresh
// key prefix per test whose keys are deleted when the test ends.
//
// The server comes from redisenv.Provide's auto chain: $REDIS_URL when set,
// else a redis-server on PATH (spawned), else a container, else an embedded
// miniredis. $PAYBENCH_TEST_REDIS forces one kind (url, spawn, container,
// embedded). Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
//
// Main stops a spawned server when the tests end, even when they fail. A
// test that panics or calls os.Exit ends the process without running
// Main's deferred stop; a spawned redis-server then dies with the process
// (it is started with Pdeathsig SIGKILL) and a container is removed by
// testcontainers' reaper. Server works without Main too, relying on that
// alone; Main is the way.
//
// Tests that need the server are skipped in -short mode.
//
// Cluster gives a test binary one shared spawned Redis Cluster the same
// way (3 masters, 3 replicas; stopped by Main), and ClusterKeyspace a
// fresh prefix on it.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
)

// EnvKind names the environment variable that forces the server's kind.
const EnvKind = "PAYBENCH_TEST_REDIS"

// Time-outs.
const (
	// startTimeout bounds starting the shared server.
	startTimeout = 3 * time.Minute
	// cleanupTimeout bounds deleting one test's keys.
	cleanupTimeout = 30 * time.Second
)

var (
	mu       sync.Mutex
	shared   *redisenv.Server
	startErr error
	started  bool
	seq      atomic.Uint64
	runID    = newRunID()
)

// Main runs the tests and then stops the shared server, if one was
// started. Call it from TestMain: os.Exit(redistest.Main(m)).
func Main(m *testing.M) int {
	defer stop()
	return m.Run()
}

// stop closes the shared server; later calls to Server start a new one.
func stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "redistest: stop %s: %v\n", shared.Redacted(), err)
		}
	}
	shared, startErr, started = nil, nil, false
	stopCluster()
}

// Server returns the shared server, starting it on first use. It skips
// the test in -short mode, and when no server can be had at all. When
// $REDIS_URL (or a forced kind) was asked for and fails, the test fails
// instead: the test run was configured for that server.
func Server(t testing.TB) *redisenv.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Redis server; skipped in -short mode")
	}
	mu.Lock()
	defer mu.Unlock()
	if !started {
		started = true
		shared, startErr = start()
	}
	if startErr != nil {
		if explicit() {
			t.Fatalf("redistest: %v", startErr)
		}
		t.Skipf("redistest: no Redis server can be had: %v", startErr)
	}
	return shared
}

// explicit reports whether the environment asked for a particular server.
func explicit() bool {
	k := os.Getenv(EnvKind)
	return os.Getenv(redisenv.EnvURL) != "" || (k != "" && k != string(redisenv.KindAuto))
}

// start provides the shared server.
func start() (*redisenv.Server, error) {
	kind, err := redisenv.ParseKind(os.Getenv(EnvKind))
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", EnvKind, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := redisenv.Provide(ctx, redisenv.Options{Force: kind})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Keyspace returns a Keyspace with a prefix no other test (of this or any
// other test binary) uses, "pb:test:<run>:<n>:<test name>:", and registers
// a cleanup that deletes its keys when the test ends. It calls Server, so
// it skips or fails as Server does.
func Keyspace(t testing.TB) impl.Keyspace {
	t.Helper()
	return keyspaceOn(t, Server(t))
}

// keyspaceOn is Keyspace on s.
func keyspaceOn(t testing.TB, s *redisenv.Server) impl.Keyspace {
	t.Helper()
	prefix := fmt.Sprintf("pb:test:%s:%d:%s:", runID, seq.Add(1), sanitize(t.Name()))
	ks, err := impl.NewKeyspace(prefix)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := redisenv.DeletePrefix(ctx, s.Admin(), ks); err != nil {
			t.Errorf("redistest: delete keys of %s: %v", t.Name(), err)
		}
	})
	return ks
}

// sanitize keeps a test name's letters, digits, '_' and '-' (others become
// '-'), at most 48 bytes, so that the prefix passes impl.NewKeyspace.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= 48 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// newRunID returns 8 random hex digits that tell this test binary's keys
// from another's sharing the server.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Spawn starts a redis-server of the test's own, with extra redis-server
// arguments (say "--maxmemory-policy", "noeviction"), for a test that
// changes the server or breaks it (a stall, a restart, a full memory). It
// is stopped when the test ends. The test is skipped under -short and when
// no redis-server is on PATH.
func Spawn(t testing.TB, args ...string) *redisenv.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("spawns a redis-server (-short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindSpawn, ServerArgs: args})
	if err != nil {
		if errors.Is(err, redisenv.ErrUnavailable) {
			t.Skipf("no redis-server to spawn: %v", err)
		}
		t.Fatalf("spawn redis-server %v: %v", args, err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// libraryTimers are goroutines a client library leaves behind on purpose,
// bounded in time, which goleak must not count. rueidis's cluster client,
// after a MOVED (a slot moved, a failover), schedules a topology refresh
// after a random delay of up to a few seconds (DelayDo), and after a
// refresh that dropped a node's connections closes them 5 s later; both
// goroutines may outlive the client's Close.
var libraryTimers = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
}

// MainNoLeaks is Main, then a goroutine-leak check: when the tests passed
// but a goroutine outlives them (a backend left open, a worker or fault
// that never ended), the package fails. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(redistest.MainNoLeaks(m)) }
//
// One library goroutine is not a leak: rueidis's cluster client, after a
// topology refresh (which closing one of its connections triggers), closes
// the connections it replaced 5 s later, in a goroutine of its own that
// nothing can wait for.
func MainNoLeaks(m *testing.M) int {
	code := Main(m)
	if code == 0 {
		if err := goleak.Find(libraryTimers...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	return code
}
