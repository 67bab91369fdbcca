package scenarios_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
	"github.com/paybench/paybench/scenarios/runner"
)

// These tests run order cells through the runner, as `paybench run` does,
// on a redis-server each test spawns for itself, while a fault hits the
// server: killed connections, a stalled process, a full memory, a
// restart. A safe cell must never FAIL over its own lost replies nor
// claim an order was reset to created; it PASSes with its lost replies
// settled, or is INCONCLUSIVE with the reason.

// faultCellTimeout bounds one faulty cell, fault and read-back included.
const faultCellTimeout = 2 * time.Minute

// orderScenario returns a named scenario with its flags set.
func orderScenario(t *testing.T, name string, args ...string) scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.New(name)
	if err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	sc.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	return sc
}

// fault hits srv while a cell runs, until ctx ends; it returns what it
// did, for the log.
type fault func(ctx context.Context, t *testing.T, srv *redisenv.Server, backend string) string

// runFaultyCell runs one cell of sc through the runner on srv, with f
// started when the cell starts and stopped when it is done.
func runFaultyCell(t *testing.T, srv *redisenv.Server, sc scenarios.Scenario, backend, strategy string, duration time.Duration, f fault) result.Cell {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultCellTimeout)
	defer cancel()
	fctx, stopFault := context.WithCancel(ctx)
	defer stopFault()
	did := make(chan string, 1)
	p := &runner.Plan{
		Kind: "run", Server: srv, Backends: []string{backend},
		Settings:  runner.Settings{Concurrency: 8, Seed: 1, Duration: duration},
		Keys:      impl.MustKeyspace("pb:orderfaults:"),
		Scenarios: []runner.ScenarioCells{{Scenario: sc, Strategies: []string{strategy}}},
		OnEvent: func(e runner.Event) {
			switch {
			case e.Type == runner.CellStarted && f != nil:
				go func() { did <- f(fctx, t, srv, backend) }()
			case e.Type == runner.CellDone:
				stopFault()
			}
		},
	}
	doc, err := runner.Run(ctx, p)
	if doc == nil || len(doc.Cells) != 1 {
		t.Fatalf("no cell: %v", err)
	}
	if f != nil {
		t.Logf("fault: %s", <-did)
	}
	c := doc.Cells[0]
	t.Logf("%s %s (ops %d, errors %v, settled %d): %s", c.Key(), c.Verdict, c.Ops, c.Errors, c.Settled, c.Summary)
	if c.Reason != "" {
		t.Logf("reason: %s", c.Reason)
	}
	if keys, err := srv.Admin().Keys(context.Background(), "pb:orderfaults:*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("%d keys left behind (%v): %.5q", len(keys), err, keys)
	}
	return c
}

// killConnections kills every connection of the backend under test
// (CLIENT KILL ID, found by name in CLIENT LIST) rounds times, every
// interval, starting after the first interval.
func killConnections(rounds int, interval time.Duration) fault {
	return func(ctx context.Context, t *testing.T, srv *redisenv.Server, backend string) string {
		name := "name=" + impl.DefaultClientName(backend)
		killed := 0
		for r := 0; r < rounds; r++ {
			if impl.Sleep(ctx, interval) != nil {
				break
			}
			list, err := srv.Admin().ClientList(ctx).Result()
			if err != nil {
				t.Logf("CLIENT LIST: %v", err)
				continue
			}
			for _, line := range strings.Split(list, "\n") {
				fields := strings.Fields(line)
				if !containsField(fields, name) {
					continue
				}
				for _, f := range fields {
					if id, ok := strings.CutPrefix(f, "id="); ok {
						if err := srv.Admin().Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err == nil {
							killed++
						}
					}
				}
			}
		}
		return fmt.Sprintf("%d connections of %s killed in %d rounds", killed, backend, rounds)
	}
}

func containsField(fields []string, f string) bool {
	for _, x := range fields {
		if x == f {
			return true
		}
	}
	return false
}

// stallServer stops the server process (SIGSTOP) after, for stall, then
// lets it go on (SIGCONT): every reply in flight is late, and the
// clients' time-outs give up on commands the server runs when it wakes.
func stallServer(after, stall time.Duration) fault {
	return func(ctx context.Context, t *testing.T, srv *redisenv.Server, _ string) string {
		pid := srv.PID()
		if pid <= 0 {
			return "no process to stall"
		}
		if impl.Sleep(ctx, after) != nil {
			return "the cell ended before the stall"
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			return "SIGSTOP: " + err.Error()
		}
		defer syscall.Kill(pid, syscall.SIGCONT)
		time.Sleep(stall) // whatever ctx says: the stall is the fault
		return fmt.Sprintf("server stopped %s after %s", stall, after)
	}
}

// checkSafeUnderFault holds a safe order cell to the promise: never FAIL,
// never an order "reset to created"; PASS only with every failure settled
// and a "replies lost" line, else INCONCLUSIVE with a reason. mustFail
// says the fault cannot have spared every operation; a client that rides
// a stall out (no time-out of its own) may see no failure at all, and
// then the cell PASSes like any other.
func checkSafeUnderFault(t *testing.T, c result.Cell, mustFail bool) {
	t.Helper()
	failures := int64(0)
	for class, n := range c.Errors {
		if class != impl.ClassCanceled && class != impl.ClassContention {
			failures += n
		}
	}
	if failures == 0 && mustFail {
		t.Errorf("the fault failed no operation (%v): nothing was tested", c.Errors)
	}
	if strings.Contains(c.Summary, "reset to created") || c.Figures["orders_reset"] != 0 {
		t.Errorf("a safe cell claims orders reset to created (%v): %s", c.Figures["orders_reset"], c.Summary)
	}
	switch c.Verdict {
	case result.Pass:
		if failures == 0 {
			break
		}
		if c.Settled < failures {
			t.Errorf("PASS with %d failures and %d settled", failures, c.Settled)
		}
		if !strings.Contains(c.Summary, "replies lost") {
			t.Errorf("PASS over failures without a \"replies lost\" line: %s", c.Summary)
		}
	case result.Inconclusive:
		if c.Reason == "" {
			t.Error("INCONCLUSIVE without a reason")
		}
	default:
		t.Errorf("verdict %s under a fault, want PASS (settled) or INCONCLUSIVE: %s %s", c.Verdict, c.Summary, c.Reason)
	}
	for _, inv := range c.Invariants {
		if !inv.Holds && c.Verdict != result.Inconclusive {
			t.Errorf("broken invariant %q: %s", inv.Name, inv.Detail)
		}
	}
	if lost := c.Figures["replies_lost"]; c.Verdict == result.Pass && failures > 0 && lost == 0 {
		t.Errorf("PASS over failures with no reply lost: %v", c.Figures)
	}
}

// TestOrderScenariosUnderFaults kills the backend's connections, or stalls
// the server for 3.5 s (longer than the clients' 3 s time-outs), while
// duplicate-order and pay-cancel (and checkout, connections killed) run
// with the safe strategy, on both backends.
func TestOrderScenariosUnderFaults(t *testing.T) {
	const stall = 3500 * time.Millisecond
	for _, tc := range []struct {
		name     string
		scenario string
		duration time.Duration
		fault    fault
		stalled  bool // the fault stalls every call in flight for stall
	}{
		{"killed connections/duplicate-order", "duplicate-order", 2500 * time.Millisecond, killConnections(4, 400*time.Millisecond), false},
		{"killed connections/pay-cancel", "pay-cancel", 2500 * time.Millisecond, killConnections(4, 400*time.Millisecond), false},
		{"killed connections/checkout", "checkout", 2500 * time.Millisecond, killConnections(4, 400*time.Millisecond), false},
		{"stall/duplicate-order", "duplicate-order", 6 * time.Second, stallServer(700*time.Millisecond, stall), true},
		{"stall/pay-cancel", "pay-cancel", 6 * time.Second, stallServer(700*time.Millisecond, stall), true},
	} {
		for _, backend := range impl.Backends() {
			t.Run(tc.name+"/"+backend, func(t *testing.T) {
				srv := redistest.Spawn(t)
				c := runFaultyCell(t, srv, orderScenario(t, tc.scenario), backend, impl.OrderSafe, tc.duration, tc.fault)
				// go-redis gives up after its 3 s read time-out; rueidis
				// has no time-out without a deadline and waits the stall
				// out. Either way the slowest operation shows the stall.
				if max := time.Duration(c.Latency.Corrected.Max) * time.Microsecond; tc.stalled && max < 3*time.Second {
					t.Errorf("slowest operation %s: the stall did not hit the cell", max)
				}
				checkSafeUnderFault(t, c, !tc.stalled || backend == impl.GoRedis)
			})
		}
	}
}

// usedMemory reads used_memory from INFO memory.
func usedMemory(t *testing.T, srv *redisenv.Server) int64 {
	t.Helper()
	info, err := srv.Admin().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("INFO memory has no used_memory")
	return 0
}

// TestDuplicateOrderOnAFullServer fills the server (maxmemory just above
// the memory in use, noeviction) under duplicate-order safe: the cell must
// not PASS, and its summary must say how many orders were submitted, how
// many the server holds and that calls were refused.
func TestDuplicateOrderOnAFullServer(t *testing.T) {
	for _, backend := range impl.Backends() {
		t.Run(backend, func(t *testing.T) {
			srv := redistest.Spawn(t, "--maxmemory-policy", "noeviction")
			limit := usedMemory(t, srv) + 1<<20
			if err := srv.Admin().ConfigSet(context.Background(), "maxmemory", strconv.FormatInt(limit, 10)).Err(); err != nil {
				t.Fatal(err)
			}
			c := runFaultyCell(t, srv, orderScenario(t, "duplicate-order", "--orders", "2000"), backend, impl.OrderSafe, 0, nil)
			if c.Verdict == result.Pass || c.Verdict == result.Fail {
				t.Fatalf("%s on a full server: %s (%s)", c.Verdict, c.Summary, c.Reason)
			}
			if c.Errors[impl.ClassOOM] == 0 || !strings.Contains(c.Reason, "oom") {
				t.Errorf("no OOM counted or named: errors %v, reason %q", c.Errors, c.Reason)
			}
			want := fmt.Sprintf("%d orders submitted 4× each (%d on the server)", int64(c.Figures["orders_submitted"]), int64(c.Figures["orders"]))
			if c.Figures["orders_submitted"] != 2000 || c.Figures["orders"] >= 2000 || !strings.HasPrefix(c.Summary, want) {
				t.Errorf("summary %q, want it to start %q (2000 submitted, fewer on the server)", c.Summary, want)
			}
			if !strings.Contains(c.Summary, "calls refused by the server (not applied)") {
				t.Errorf("summary does not count the refused calls: %s", c.Summary)
			}
		})
	}
}

// TestDuplicateOrderServerRestart restarts the server (no persistence)
// during duplicate-order safe: the cell's data is gone, so it is
// INCONCLUSIVE, and no figure pretends the lost stock was taken.
func TestDuplicateOrderServerRestart(t *testing.T) {
	for _, backend := range impl.Backends() {
		t.Run(backend, func(t *testing.T) {
			srv := redistest.Spawn(t)
			restart := func(ctx context.Context, t *testing.T, srv *redisenv.Server, _ string) string {
				if impl.Sleep(ctx, 800*time.Millisecond) != nil {
					return "the cell ended before the restart"
				}
				if err := srv.Restart(ctx); err != nil {
					return "restart: " + err.Error()
				}
				return "server restarted after 800ms"
			}
			c := runFaultyCell(t, srv, orderScenario(t, "duplicate-order"), backend, impl.OrderSafe, 3*time.Second, restart)
			if c.Verdict != result.Inconclusive || c.Reason == "" {
				t.Fatalf("%s after a restart (%q), want INCONCLUSIVE with a reason", c.Verdict, c.Reason)
			}
			if strings.Contains(c.Summary, "taken twice") || c.Figures["units_taken_extra"] != 0 {
				t.Errorf("the lost data reads as stock taken twice: %s %v", c.Summary, c.Figures["units_taken_extra"])
			}
		})
	}
}
