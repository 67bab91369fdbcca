package runner

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// TestGuardsWithoutScriptingAreInconclusive runs the lock and limiter
// cells whose strategies need Lua as an ACL user without scripting
// (+@all -@scripting): every script is refused with NOPERM, and no cell
// may PASS — each is INCONCLUSIVE and its reason names the class and the
// server's words. (At main, lock-race fenced PASSed with every operation
// failed.)
func TestGuardsWithoutScriptingAreInconclusive(t *testing.T) {
	for _, tc := range []struct {
		scenario   string
		strategies []string
	}{
		{"lock-race", []string{impl.LockFenced, impl.LockToken}},
		{"rate-limit", []string{impl.LimitGCRA, impl.LimitFixedWindow}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			srv := redistest.Spawn(t)
			ctx := context.Background()
			if err := srv.Admin().Do(ctx, "ACL", "SETUSER", "u", "on", ">pw", "~pb:*", "+@all", "-@scripting").Err(); err != nil {
				t.Fatal(err)
			}
			srv = asUser(t, srv, "u", "pw")
			p := &Plan{
				Kind: "run", Server: srv, Backends: impl.Backends(),
				Settings:  Settings{Concurrency: 8, Seed: 1, Duration: 500 * time.Millisecond},
				Keys:      impl.MustKeyspace("pb:noscript:"),
				Scenarios: []ScenarioCells{{Scenario: scenario(t, tc.scenario), Strategies: tc.strategies}},
			}
			doc, err := runPlan(t, p)
			if doc == nil {
				t.Fatalf("no document: %v", err)
			}
			if len(doc.Cells) != len(impl.Backends())*len(tc.strategies) {
				t.Fatalf("%d cells", len(doc.Cells))
			}
			for _, c := range doc.Cells {
				t.Logf("%s %s: %s", c.Key(), c.Verdict, c.Reason)
				if c.Verdict != result.Inconclusive {
					t.Errorf("%s: %s over refused scripts, want INCONCLUSIVE (%s %s)", c.Key(), c.Verdict, c.Summary, c.Error)
				}
				for _, w := range []string{impl.ClassNoPerm, "NOPERM"} {
					if !strings.Contains(c.Reason, w) {
						t.Errorf("%s: reason %q does not name %q", c.Key(), c.Reason, w)
					}
				}
			}
			if VerdictError(doc) == nil {
				t.Error("a run over refused scripts exits 0")
			}
		})
	}
}

// connectionKiller kills the connections of the backends under test
// (named paybench-goredis and paybench-rueidis; never paybench-admin)
// every few milliseconds while active, with CLIENT KILL ID, until
// stopped. It is active only while a cell runs: a backend's connection
// killed while the runner opens it would stop the run, which is not the
// fault under test.
type connectionKiller struct {
	rdb    redis.UniversalClient
	active atomic.Bool
	killed atomic.Int64
	stop   chan struct{}
	done   sync.WaitGroup
}

// onEvent is a Plan.OnEvent that makes the killer active while a cell
// runs.
func (k *connectionKiller) onEvent(e Event) {
	switch e.Type {
	case CellStarted:
		k.active.Store(true)
	case CellDone:
		k.active.Store(false)
	}
}

// startKiller starts killing on rdb.
func startKiller(rdb redis.UniversalClient) *connectionKiller {
	k := &connectionKiller{rdb: rdb, stop: make(chan struct{})}
	k.done.Go(func() {
		t := time.NewTicker(3 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-t.C:
			}
			if !k.active.Load() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			list, err := k.rdb.ClientList(ctx).Result()
			for _, line := range strings.Split(list, "\n") {
				if err != nil || !backendConnection(line) {
					continue
				}
				for _, f := range strings.Fields(line) {
					if id, ok := strings.CutPrefix(f, "id="); ok && k.rdb.Do(ctx, "CLIENT", "KILL", "ID", id).Err() == nil {
						k.killed.Add(1)
					}
				}
			}
			cancel()
		}
	})
	return k
}

// backendConnection reports whether a CLIENT LIST line is a connection of
// a backend under test.
func backendConnection(line string) bool {
	for _, b := range impl.Backends() {
		if strings.Contains(line, " name="+impl.DefaultClientName(b)+" ") {
			return true
		}
	}
	return false
}

// Stop stops the killer and returns how many connections it killed.
func (k *connectionKiller) Stop() int64 {
	close(k.stop)
	k.done.Wait()
	return k.killed.Load()
}

// TestGuardsWithKilledConnections kills the backends' connections while
// guard cells run — duplicate-submit's dedupe guard, lock-race's token and
// fenced locks: replies are lost, and the strategy must never be blamed
// for it. A cell PASSes only when every failed operation was settled
// against the server (Cell.Settled), and is INCONCLUSIVE otherwise —
// never FAIL.
func TestGuardsWithKilledConnections(t *testing.T) {
	for _, tc := range []struct {
		scenario   string
		args       []string
		strategies []string
		duration   time.Duration
	}{
		{"duplicate-submit", nil, []string{impl.DedupeSetNX}, 0},
		{"lock-race", nil, []string{impl.LockToken, impl.LockFenced}, time.Second},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			srv := redistest.Spawn(t)
			p := &Plan{
				Kind: "run", Server: srv, Backends: impl.Backends(),
				Settings:  Settings{Concurrency: 8, Seed: 1, Duration: tc.duration},
				Keys:      impl.MustKeyspace("pb:killed:"),
				Scenarios: []ScenarioCells{{Scenario: scenario(t, tc.scenario, tc.args...), Strategies: tc.strategies}},
			}
			killer := startKiller(srv.Admin())
			p.OnEvent = killer.onEvent
			doc, err := runPlan(t, p)
			killed := killer.Stop()
			if doc == nil || len(doc.Cells) != len(impl.Backends())*len(tc.strategies) {
				t.Fatalf("document %v: %v", doc, err)
			}
			if killed == 0 {
				t.Fatal("no connection was killed: the test proves nothing")
			}
			var failed int64
			for _, c := range doc.Cells {
				var n int64
				for _, v := range c.Errors {
					n += v
				}
				failed += n
				t.Logf("%s %s (%d connections killed, %d operations failed, %d settled): %s %s", c.Key(), c.Verdict, killed, n, c.Settled, c.Summary, c.Reason)
				switch {
				case c.Verdict == result.Fail:
					t.Errorf("%s FAILed the strategy over lost replies: %s %+v", c.Key(), c.Summary, c.Invariants)
				case c.Verdict == result.Pass && n > c.Settled:
					t.Errorf("%s PASSed with %d failed operations, %d settled", c.Key(), n, c.Settled)
				case c.Verdict != result.Pass && c.Verdict != result.Inconclusive:
					t.Errorf("%s: %s, want PASS or INCONCLUSIVE (%s)", c.Key(), c.Verdict, c.Error)
				}
			}
			if failed == 0 {
				t.Logf("%d connections killed but no operation failed: only idle connections were hit", killed)
			}
		})
	}
}
