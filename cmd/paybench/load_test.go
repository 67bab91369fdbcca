package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/reports/result"
)

func TestLoadUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no operation", []string{"load"}},
		{"flag instead of operation", []string{"load", "--rate", "5"}},
		{"unknown operation", []string{"load", "stock.nosuch"}},
		{"unknown strategy", []string{"load", "stock.deduct", "--strategy", "magic"}},
		{"unknown backend", []string{"load", "stock.deduct", "--backend", "jedis"}},
		{"extra argument", []string{"load", "stock.deduct", "extra"}},
		{"rate not a number", []string{"load", "stock.deduct", "--rate", "fast"}},
		{"zero rate", []string{"load", "stock.deduct", "--rate", "0"}},
		{"negative rate", []string{"load", "stock.deduct", "--rate", "-5"}},
		{"ramp to nothing", []string{"load", "stock.deduct", "--rate", "0:0"}},
		{"ramp without duration", []string{"load", "stock.deduct", "--rate", "10:20", "--requests", "100"}},
		{"zero pipeline", []string{"load", "stock.deduct", "--pipeline", "0"}},
		{"huge pipeline", []string{"load", "stock.deduct", "--pipeline", "1000000"}},
		{"zero keys", []string{"load", "stock.deduct", "--keys", "0"}},
		{"unknown key distribution", []string{"load", "stock.deduct", "--key-dist", "pareto"}},
		{"bad zipf exponent", []string{"load", "stock.deduct", "--key-dist", "zipf:-1"}},
		{"bad hot share", []string{"load", "stock.deduct", "--key-dist", "hot:2"}},
		{"max workers without rate", []string{"load", "stock.deduct", "--max-workers", "100"}},
		{"max workers below concurrency", []string{"load", "stock.deduct", "--rate", "10", "-c", "8", "--max-workers", "4"}},
		{"negative requests", []string{"load", "stock.deduct", "--requests", "-1"}},
		{"negative warm-up", []string{"load", "stock.deduct", "--warmup", "-1s"}},
		{"zero concurrency", []string{"load", "stock.deduct", "-c", "0"}},
		{"bad duration", []string{"load", "stock.deduct", "--duration", "later"}},
		{"bad URL", []string{"load", "stock.deduct", "--redis-url", "http://u:hunter2@example.com"}},
		{"wait with a pipeline", []string{"load", "stock.deduct", "--wait-replicas", "1", "--pipeline", "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, context.Background(), tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, stderr)
			}
			assertOneLine(t, stderr, "hunter2")
		})
	}
}

func TestLoadHelpListsFlags(t *testing.T) {
	code, stdout, _ := runCLI(t, context.Background(), "load", "stock.deduct", "-h")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, flag := range []string{"--rate", "--pipeline", "--max-workers", "--warmup", "--requests", "--keys", "--key-dist", "--quiet", "--json"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("help lacks %s:\n%s", flag, stdout)
		}
	}
	if code, stdout, _ := runCLI(t, context.Background(), "load", "-h"); code != exitOK || !strings.Contains(stdout, "stock.deduct") {
		t.Errorf("load -h: exit %d\n%s", code, stdout)
	}
}

func TestListShowsOperations(t *testing.T) {
	var b strings.Builder
	listOperations(&b)
	if !strings.Contains(b.String(), "stock.deduct") || !strings.Contains(b.String(), "lua") {
		t.Fatalf("operations list:\n%s", b.String())
	}
}

// loadDoc runs `paybench load` with args and --json, expects exit want and
// returns the document.
func loadDoc(t *testing.T, ctx context.Context, want int, args ...string) *result.Document {
	t.Helper()
	out := filepath.Join(t.TempDir(), "load.json")
	code, stdout, stderr := runCLI(t, ctx, append(append([]string{"load"}, args...), "--json", out)...)
	if code != want {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress written to a stderr that is not a terminal: %q", stderr)
	}
	t.Logf("%s", stdout)
	return readDoc(t, out)
}

func TestLoadResultDocument(t *testing.T) {
	url := serverURL(t)
	doc := loadDoc(t, context.Background(), exitOK, "stock.deduct", "--redis-url", url, "--duration", "1200ms", "-c", "4",
		"--keys", "50", "--key-dist", "zipf", "--warmup", "200ms")
	if doc.Kind != "load" || doc.Schema != result.SchemaVersion || doc.Interrupted || len(doc.Cells) != 2 {
		t.Fatalf("kind=%q schema=%d interrupted=%v cells=%d", doc.Kind, doc.Schema, doc.Interrupted, len(doc.Cells))
	}
	for _, c := range doc.Cells {
		l := c.Latency
		switch {
		case c.Operation != "stock.deduct" || c.Strategy != "lua" || c.Verdict != result.Measured:
			t.Errorf("cell %+v", c)
		case c.Ops == 0 || c.ThroughputOps <= 0 || c.ElapsedSec < 1:
			t.Errorf("%s: ops=%d throughput=%.0f elapsed=%.2fs", c.Backend, c.Ops, c.ThroughputOps, c.ElapsedSec)
		case l.Corrected.Count != c.Ops || l.Uncorrected.Count != c.Ops || l.Corrected.P50 <= 0 || l.Corrected.P999 < l.Corrected.P99 || l.Corrected.Max < l.Corrected.P999:
			t.Errorf("%s: latency %+v", c.Backend, l)
		case len(c.Series) == 0:
			t.Errorf("%s: no series", c.Backend)
		case c.Params["key_dist"] != "zipf:0.99" || c.Params["keys"] != "50" || c.Params["loop"] != "closed" || c.Params["warmup"] != "200ms":
			t.Errorf("%s: params %v", c.Backend, c.Params)
		}
		var seriesOps int64
		for _, p := range c.Series {
			seriesOps += p.Ops
		}
		if seriesOps != c.Ops {
			t.Errorf("%s: series adds up to %d operations, cell has %d", c.Backend, seriesOps, c.Ops)
		}
		// The server applied every measured deduction, and the warm-up's.
		if got := c.Figures["units_deducted_server"]; got < float64(c.Ops) {
			t.Errorf("%s: server deducted %.0f units for %d operations", c.Backend, got, c.Ops)
		}
	}
	f := doc.Fairness
	if f.GOMAXPROCS == 0 || f.NumCPU == 0 || f.GoVersion == "" || f.Server.Version == "" || len(f.Libraries) < 2 {
		t.Errorf("fairness %+v", f)
	}
	if f.Clients["goredis"]["pool_size"] != "4" || f.Clients["rueidis"]["auto_pipelining"] != "true" {
		t.Errorf("client settings %v", f.Clients)
	}
}

func TestLoadPipelineCountsEachOperation(t *testing.T) {
	url := serverURL(t)
	for _, strategy := range []string{"lua", "decr"} {
		t.Run(strategy, func(t *testing.T) {
			doc := loadDoc(t, context.Background(), exitOK, "stock.deduct", "--redis-url", url, "--strategy", strategy,
				"--pipeline", "16", "-c", "3", "--requests", "1000", "--keys", "7", "--key-dist", "hot")
			for _, c := range doc.Cells {
				if c.Ops != 1000 || len(c.Errors) != 0 || c.Params["pipeline"] != "16" {
					t.Errorf("%s: ops=%d errors=%v params=%v", c.Backend, c.Ops, c.Errors, c.Params)
				}
				if got := c.Figures["units_deducted_server"]; got != 1000 {
					t.Errorf("%s: the server took %.0f units for 1000 pipelined deductions", c.Backend, got)
				}
			}
		})
	}
	code, _, stderr := runCLI(t, context.Background(), "load", "stock.deduct", "--redis-url", url, "--strategy", "watch", "--pipeline", "4", "--requests", "10")
	if code != exitUsage || !strings.Contains(stderr, "pipelined") {
		t.Errorf("--pipeline with watch: exit %d, %q", code, stderr)
	}
}

// The rate is the pacer's schedule: every operation the schedule makes
// due is either run or counted as dropped, exactly, and the rate is never
// exceeded. The rate is 50/s, far below what any machine keeps up with, so
// the test says nothing about speed: how close to a high rate the engine
// gets is bench's BenchmarkOpenLoopRate, and paybench's own figures
// (README gives the 10 s figure on an idle machine).
func TestLoadRateKeepsTheSchedule(t *testing.T) {
	const rate, slots = 50, 100 // over 2 s
	url := serverURL(t)
	doc := loadDoc(t, context.Background(), exitOK, "stock.deduct", "--redis-url", url, "--rate", strconv.Itoa(rate), "--duration", "2s", "-c", "4")
	for _, c := range doc.Cells {
		t.Logf("%s: %.1f ops/s, dropped %d, workers %s", c.Backend, c.ThroughputOps, c.Dropped, c.Params["workers_peak"])
		if c.Ops+c.Dropped != slots {
			t.Errorf("%s: %d run + %d dropped, want the schedule's %d slots", c.Backend, c.Ops, c.Dropped, slots)
		}
		if c.ElapsedSec != 2 || c.ThroughputOps > rate {
			t.Errorf("%s: %.1f ops/s over %gs, want at most %d/s over the 2 s window", c.Backend, c.ThroughputOps, c.ElapsedSec, rate)
		}
		// Four idle workers claim slots 80 ms ahead: dropping half takes a
		// load generator frozen for most of the window.
		if c.Dropped > slots/2 {
			t.Errorf("%s: dropped %d of %d slots at %d/s", c.Backend, c.Dropped, slots, rate)
		}
		if c.Params["loop"] != "open" || c.Params["rate"] != "50/s" {
			t.Errorf("%s: params %v", c.Backend, c.Params)
		}
	}
}

// A frozen server: the open loop keeps its schedule, the operations due
// during the freeze wait, and the latency from their intended start shows
// it (hundreds of ms at p99) while the latency from the send does not
// (only the few calls in flight saw the freeze).
func TestLoadStallShowsInCorrectedLatencyOnly(t *testing.T) {
	srv := redistest.Server(t)
	pid := srv.PID()
	if pid == 0 {
		t.Skipf("needs a spawned redis-server to freeze (have %s)", srv.Kind)
	}
	for _, backend := range []string{"goredis", "rueidis"} {
		t.Run(backend, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "stall.json")
			type outcome struct {
				code           int
				stdout, stderr string
			}
			base, ok := scriptCalls(context.Background(), srv.Admin())
			if !ok {
				t.Skip("the server's INFO does not count script calls")
			}
			done := make(chan outcome, 1)
			go func() {
				code, stdout, stderr := runCLI(t, context.Background(), "load", "stock.deduct", "--redis-url", srv.URL,
					"--backend", backend, "--rate", "1000", "--duration", "3s", "-c", "8", "--max-workers", "8", "--json", out)
				done <- outcome{code, stdout, stderr}
			}()
			// Whatever happens, the shared server runs again at the end.
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
			// Freeze once the load is under way (200 calls, 0.2 s of
			// it), however long the command took to start it.
			if !waitForScriptCalls(context.Background(), t, srv.Admin(), base, 200) {
				t.Fatal("cannot tell when the load started")
			}
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatalf("SIGSTOP: %v", err)
			}
			time.Sleep(time.Second)
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatalf("SIGCONT: %v", err)
			}
			var o outcome
			select {
			case o = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the load did not end")
			}
			if o.code != exitOK {
				t.Fatalf("exit %d\n%s\n%s", o.code, o.stdout, o.stderr)
			}
			t.Logf("%s", o.stdout)
			doc := readDoc(t, out)
			c := doc.Cells[0]
			corr, unc := c.Latency.Corrected, c.Latency.Uncorrected
			t.Logf("%s: corrected p50 %dµs p99 %dµs max %dµs; uncorrected p50 %dµs p99 %dµs max %dµs; ops %d dropped %d",
				backend, corr.P50, corr.P99, corr.Max, unc.P50, unc.P99, unc.Max, c.Ops, c.Dropped)
			if corr.P99 < 300_000 {
				t.Errorf("corrected p99 %dµs does not show the 1 s freeze", corr.P99)
			}
			if unc.P99 > corr.P99/3 {
				t.Errorf("uncorrected p99 %dµs is not far below the corrected %dµs", unc.P99, corr.P99)
			}
			if unc.Max < 500_000 {
				t.Errorf("uncorrected max %dµs: the calls in flight during the freeze should show it", unc.Max)
			}
			var worst int64
			for _, p := range c.Series {
				worst = max(worst, p.P99)
			}
			if worst < 500_000 {
				t.Errorf("no second of the series shows the freeze: %+v", c.Series)
			}
		})
	}
}

// The interrupt comes once the load is under way (50 script calls on the
// server), however long the command took to get there.
func TestLoadInterruptWritesPartialResult(t *testing.T) {
	srv := redistest.Server(t)
	for _, rate := range []string{"", "500"} {
		t.Run("rate="+rate, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			base, counted := scriptCalls(ctx, srv.Admin())
			canceled := make(chan time.Time, 1)
			go func() {
				if !counted || !waitForScriptCalls(ctx, t, srv.Admin(), base, 50) {
					time.Sleep(1500 * time.Millisecond) // an embedded server: no counts
				}
				canceled <- time.Now()
				cancel()
			}()
			args := []string{"stock.deduct", "--redis-url", srv.URL, "--duration", "1m", "-c", "4"}
			if rate != "" {
				args = append(args, "--rate", rate)
			}
			doc := loadDoc(t, ctx, exitInterrupted, args...)
			// A hang guard: the interrupt must not wait for the minute.
			if took := time.Since(<-canceled); took > 30*time.Second {
				t.Errorf("took %s to stop", took)
			}
			if !doc.Interrupted || len(doc.Cells) != 1 || doc.Cells[0].Ops == 0 || len(doc.Cells[0].Series) == 0 {
				t.Fatalf("interrupted=%v cells=%+v", doc.Interrupted, doc.Cells)
			}
			if c := doc.Cells[0]; c.ElapsedSec >= 60 || len(c.Errors) != 0 {
				t.Errorf("elapsed %.1fs (the window should close at the interrupt) errors %v", c.ElapsedSec, c.Errors)
			}
		})
	}
}
