package scenarios_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
	"github.com/paybench/paybench/scenarios/runner"
)

// oversellItem is the item the oversell scenario sells.
const oversellItem = "sku-1"

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// withQuery returns a server handle on srv whose URL carries query (such
// as "max_retries=3"), for the backends under test to parse.
func withQuery(t *testing.T, srv *redisenv.Server, query string) *redisenv.Server {
	t.Helper()
	if query == "" {
		return srv
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	us, err := redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindURL, URL: srv.URL + "?" + query, Warn: discardWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { us.Close() })
	return us
}

// newOversell returns the oversell scenario with its flags set.
func newOversell(t *testing.T, args ...string) scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.New("oversell")
	if err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	sc.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	return sc
}

// stall freezes the server (SIGSTOP) for d, then lets it go (SIGCONT).
func stall(d time.Duration) fault {
	return func(ctx context.Context, t *testing.T, srv *redisenv.Server, backend string) string {
		pid := srv.PID()
		if pid <= 0 {
			t.Errorf("the spawned server has no PID")
			return "no stall"
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Errorf("SIGSTOP %d: %v", pid, err)
			return "no stall"
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Errorf("SIGCONT %d: %v", pid, err)
		}
		return fmt.Sprintf("server stopped for %s", d)
	}
}

// killConns kills every connection of the backend under test (CLIENT KILL
// ID, by the name CLIENT LIST shows) times times, every apart.
func killConns(times int, every time.Duration) fault {
	return func(ctx context.Context, t *testing.T, srv *redisenv.Server, backend string) string {
		admin := srv.Admin()
		name := impl.DefaultClientName(backend)
		killed := 0
		for i := 0; i < times && ctx.Err() == nil; i++ {
			list, err := admin.ClientList(ctx).Result()
			if err != nil {
				t.Errorf("CLIENT LIST: %v", err)
				break
			}
			var ids []string
			for _, line := range strings.Split(list, "\n") {
				if !strings.Contains(line, " name="+name+" ") {
					continue
				}
				for _, f := range strings.Fields(line) {
					if id, ok := strings.CutPrefix(f, "id="); ok {
						ids = append(ids, id)
					}
				}
			}
			cmds, _ := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, id := range ids {
					p.Do(ctx, "CLIENT", "KILL", "ID", id)
				}
				return nil
			})
			for _, c := range cmds {
				if c.Err() == nil {
					killed++
				}
			}
			time.Sleep(every)
		}
		return fmt.Sprintf("%d connections named %s killed in %d rounds", killed, name, times)
	}
}

// waitForSale waits until the cell's purchases hash holds at least n
// purchases: the sale is under way.
func waitForSale(ctx context.Context, admin redis.UniversalClient, key string, n int64) error {
	for {
		if got, err := admin.HLen(ctx, key).Result(); err == nil && got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the sale did not start: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// runWithFault runs one oversell cell through the runner, as the command
// line does, and applies f once the sale is under way.
func runWithFault(t *testing.T, srv, planSrv *redisenv.Server, backend, strategy string, f fault, args ...string) result.Cell {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultCellTimeout)
	defer cancel()
	keys := impl.MustKeyspace(fmt.Sprintf("pb:faults:%d:", time.Now().UnixNano()))
	cellKeys := impl.MustKeyspace(keys.Key("oversell", backend, strategy) + ":")
	p := &runner.Plan{
		Kind: "run", Server: planSrv, Backends: []string{backend},
		Settings:  runner.Settings{Concurrency: 8, Seed: 1},
		Keys:      keys,
		Scenarios: []runner.ScenarioCells{{Scenario: newOversell(t, args...), Strategies: []string{strategy}}},
	}
	did := make(chan string, 1)
	go func() {
		// The cell's own keys: the runner gives each cell a keyspace
		// "<prefix>oversell:<backend>:<strategy>:".
		if err := waitForSale(ctx, srv.Admin(), impl.PurchasesKey(cellKeys, oversellItem), 20); err != nil {
			did <- err.Error()
			return
		}
		did <- f(ctx, t, srv, backend)
	}()
	t.Cleanup(func() { // never leave the server stopped
		if pid := srv.PID(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	doc, err := runner.Run(ctx, p)
	what := <-did
	if doc == nil || len(doc.Cells) != 1 {
		t.Fatalf("no cell: %v", err)
	}
	c := doc.Cells[0]
	t.Logf("%s: %s %s — %s%s; errors %v, settled %d; figures: replies_lost %v, lost_replies_applied %v, purchases_replayed %v, units_taken_unrecorded %v",
		what, c.Key(), c.Verdict, c.Summary, reasonOf(c), c.Errors, c.Settled,
		c.Figures["replies_lost"], c.Figures["lost_replies_applied"], c.Figures["purchases_replayed"], c.Figures["units_taken_unrecorded"])
	return c
}

func reasonOf(c result.Cell) string {
	if c.Reason == "" {
		return ""
	}
	return " (" + c.Reason + ")"
}

// failures counts a cell's failed operations as the runner does: every
// class but the refusals.
func failures(c result.Cell) int64 {
	var n int64
	for class, k := range c.Errors {
		if class != impl.ClassContention && class != impl.ClassCanceled {
			n += k
		}
	}
	return n
}

// checkHonest asserts what any cell under a fault must be: never a FAIL
// blamed on a strategy that holds — the one FAIL allowed is a double
// deduction proven from the server's state and named (lua under a client
// that re-sends writes); a PASS only with every failure settled and the
// lost replies told in the summary.
func checkHonest(t *testing.T, c result.Cell) {
	t.Helper()
	proven := c.Figures["units_deducted_twice"] > 0 && strings.Contains(c.Summary, "deducted twice: the client re-sent")
	if c.Verdict == result.Fail && !proven {
		t.Errorf("%s FAIL under a fault: %s %v", c.Key(), c.Summary, c.Invariants)
	}
	lost, applied := c.Figures["replies_lost"], c.Figures["lost_replies_applied"]
	if lost > 0 && c.Verdict != result.Inconclusive {
		want := fmt.Sprintf("%.0f replies lost, %.0f of those purchases had happened", lost, applied)
		if !strings.Contains(c.Summary, want) {
			t.Errorf("summary %q does not say %q", c.Summary, want)
		}
	}
	if c.Verdict == result.Pass && failures(c) != c.Settled {
		t.Errorf("PASS with %d failures and %d settled", failures(c), c.Settled)
	}
	if c.Settled > failures(c) {
		t.Errorf("settled %d of %d failures", c.Settled, failures(c))
	}
	if c.Verdict == result.Inconclusive && c.Reason == "" {
		t.Errorf("INCONCLUSIVE without a reason")
	}
}

// TestOversellUnderFaults runs oversell cells while the server stalls
// past the backends' 3 s read time-out, or while the backend's
// connections are killed, and checks that the safe strategies PASS with
// every lost reply settled against the purchases hash — never a FAIL
// blaming the strategy — and that the seed's strategies are never judged
// on failures they cannot settle.
func TestOversellUnderFaults(t *testing.T) {
	const stalled = 3500 * time.Millisecond
	for _, tc := range []struct {
		name       string
		strategies []string
		fault      fault
		wantPass   bool // every strategy must PASS (settled), not merely be honest
		// wantLost says, per backend, whether the fault must lose replies.
		wantLost map[string]bool
	}{
		// go-redis gives up on a reply after its 3 s read time-out: the
		// script ran once the server resumed, and its reply was lost.
		// rueidis sets no deadline on a command in flight (its keep-alive
		// PING runs only when nothing waits), so it waits the stall out.
		{"stall", []string{impl.StockLua}, stall(stalled), true, map[string]bool{impl.GoRedis: true}},
		{"killed connections", []string{impl.StockLua, impl.StockIdempotent, impl.StockSharded, impl.StockWatch}, killConns(5, 10*time.Millisecond), true,
			map[string]bool{impl.GoRedis: true, impl.Rueidis: true}},
		{"killed connections, seed strategies", []string{impl.StockNaive, impl.StockDecr}, killConns(5, 10*time.Millisecond), false,
			map[string]bool{impl.GoRedis: true, impl.Rueidis: true}},
	} {
		for _, backend := range impl.Backends() {
			for _, strategy := range tc.strategies {
				t.Run(tc.name+"/"+backend+"/"+strategy, func(t *testing.T) {
					srv := redistest.Spawn(t)
					size := saleSize(strategy)
					c := runWithFault(t, srv, srv, backend, strategy, tc.fault, "--stock="+size, "--buyers="+size)
					checkHonest(t, c)
					if tc.wantLost[backend] && c.Figures["replies_lost"] == 0 {
						t.Errorf("the fault lost no reply: errors %v", c.Errors)
					}
					if tc.name == "stall" && c.Figures["replies_lost"] == 0 && c.Latency.Uncorrected.Max < (3*time.Second).Microseconds() {
						t.Errorf("the stall missed the sale: no reply lost, slowest purchase %d µs", c.Latency.Uncorrected.Max)
					}
					if tc.wantPass && c.Verdict != result.Pass {
						t.Errorf("verdict %s (%s), want PASS with the lost replies settled", c.Verdict, c.Reason)
					}
				})
			}
		}
	}
}

// saleSize is the stock and the buyers of a fault test's sale: enough that
// the sale outlasts the fault (rueidis sells 4000 units with lua in about
// 0.1 s), and no more (watch's retries make each purchase slow).
func saleSize(strategy string) string {
	if strategy == impl.StockWatch {
		return "3000"
	}
	return "10000"
}

// TestOversellClientRetries runs go-redis with max_retries=3 while the
// backend's connections are killed: the client re-sends purchases whose
// replies were lost. idempotent must PASS (a re-sent purchase is answered
// from its record); lua, which records atomically but does not look the
// id up, must FAIL with its double deductions named and counted whenever
// the stock fell by more than the records; on decr and naive, units
// deducted twice must be named as the client's re-sends, with the
// setting, whatever the verdict.
func TestOversellClientRetries(t *testing.T) {
	for _, strategy := range []string{impl.StockIdempotent, impl.StockLua, impl.StockDecr, impl.StockNaive} {
		t.Run(strategy, func(t *testing.T) {
			srv := redistest.Spawn(t)
			planSrv := withQuery(t, srv, "max_retries=3")
			c := runWithFault(t, srv, planSrv, impl.GoRedis, strategy, killConns(8, 15*time.Millisecond), "--stock=4000", "--buyers=4000")
			checkHonest(t, c)
			twice, unrecorded := c.Figures["units_deducted_twice"], c.Figures["units_taken_unrecorded"]
			switch strategy {
			case impl.StockLua:
				want := fmt.Sprintf("%v units deducted twice: the client re-sent purchases whose replies were lost (go-redis retries=3)", twice)
				switch {
				case unrecorded == 0:
					t.Logf("no purchase was re-sent after its script ran: %s (%s)", c.Verdict, c.Summary)
				case c.Verdict != result.Fail || twice != unrecorded || !strings.Contains(c.Summary, want):
					t.Errorf("lua with client retries: %s, %v units deducted twice, %v unrecorded (%s); want FAIL with %q",
						c.Verdict, twice, unrecorded, c.Summary, want)
				}
			case impl.StockIdempotent:
				if c.Verdict != result.Pass || twice != 0 || unrecorded != 0 {
					t.Errorf("idempotent with client retries: %s, %v units deducted twice, %v unrecorded (%s)", c.Verdict, twice, unrecorded, c.Summary)
				}
				if c.Figures["purchases_replayed"] > 0 && !strings.Contains(c.Summary, "retries=3") {
					t.Errorf("re-sent purchases not attributed to the client's setting: %q", c.Summary)
				}
			default:
				if unrecorded > 0 {
					text := c.Summary + " " + fmt.Sprint(c.Invariants)
					if !strings.Contains(text, "re-sen") || !strings.Contains(text, "go-redis retries=3") {
						t.Errorf("%v units taken without a record, not named as the client's re-sends: %q", unrecorded, text)
					}
				}
			}
		})
	}
}

// TestStockDeductAcrossARestart drives `paybench load stock.deduct`
// through the runner while the spawned server restarts without
// persistence, losing the seeded stock: the cell is INCONCLUSIVE (the
// runner sees the new run_id), and its figures, kept, say the stock was
// lost and count the refusals apart — they never report 2^40 units as
// deducted nor a refusal as a deduction. (go-redis waits about a second
// between dials once its dials fail, hence a 3 s window.)
func TestStockDeductAcrossARestart(t *testing.T) {
	op, err := scenarios.LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range impl.Backends() {
		for _, strategy := range []string{impl.StockLua, impl.StockDecr} {
			t.Run(backend+"/"+strategy, func(t *testing.T) {
				srv := redistest.Spawn(t)
				ctx, cancel := context.WithTimeout(context.Background(), faultCellTimeout)
				defer cancel()
				p := &runner.Plan{
					Kind: "load", Server: srv, Backends: []string{backend},
					Settings: runner.Settings{Concurrency: 4, Seed: 1},
					Keys:     impl.MustKeyspace(fmt.Sprintf("pb:restart:%d:", time.Now().UnixNano())),
					Loads: []runner.LoadCells{{Operation: op, Strategies: []string{strategy},
						Shape: runner.LoadShape{Duration: 3 * time.Second}}},
				}
				restarted := make(chan error, 1)
				go func() {
					time.Sleep(500 * time.Millisecond)
					restarted <- srv.Restart(ctx)
				}()
				doc, err := runner.Run(ctx, p)
				if rerr := <-restarted; rerr != nil {
					t.Fatalf("restart: %v", rerr)
				}
				if doc == nil || len(doc.Cells) != 1 {
					t.Fatalf("no cell: %v", err)
				}
				c := doc.Cells[0]
				f := c.Figures
				t.Logf("%s %s (%s); errors %v; figures %v", c.Key(), c.Verdict, c.Reason, c.Errors, f)
				if c.Verdict != result.Inconclusive || !strings.Contains(c.Reason, "restarted") {
					t.Errorf("verdict %s (%s), want INCONCLUSIVE for the restart", c.Verdict, c.Reason)
				}
				if v, ok := f["units_deducted_server"]; ok {
					t.Errorf("units_deducted_server %v reported over a lost stock", v)
				}
				if f["stock_keys_lost"]+f["stock_keys_below_possible"] == 0 || f["purchases_refused"] == 0 || f["purchases_ok"] == 0 {
					t.Errorf("figures do not say the stock was lost, or count refusals as deductions: %v", f)
				}
			})
		}
	}
}
