package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9/logging"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

func TestMain(m *testing.M) {
	// Failures reach the tests through errors; the library's own log of
	// each failed dial would only bury the test output.
	logging.Disable()
	os.Exit(redistest.MainNoLeaks(m))
}

// testPlan is a plan on the shared test server under a fresh prefix.
func testPlan(t *testing.T) *Plan {
	t.Helper()
	return &Plan{
		Kind:     "run",
		Server:   redistest.Server(t),
		Backends: impl.Backends(),
		Settings: Settings{Concurrency: 8, Seed: 1},
		Keys:     redistest.Keyspace(t),
	}
}

// oversell returns the oversell scenario with its flags set.
func oversell(t *testing.T, args ...string) scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.New("oversell")
	if err != nil {
		t.Fatal(err)
	}
	return withFlags(t, sc, args...)
}

// withFlags parses args into sc's flags and validates it.
func withFlags(t *testing.T, sc scenarios.Scenario, args ...string) scenarios.Scenario {
	t.Helper()
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

func runPlan(t *testing.T, p *Plan) (*result.Document, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Run(ctx, p)
}

// keysUnder counts the keys under a pattern.
func keysUnder(t *testing.T, p *Plan, pattern string) []string {
	t.Helper()
	keys, err := p.Server.Admin().Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestRunsAWholePlanWithoutTheCommandLine(t *testing.T) {
	p := testPlan(t)
	// The seed's race needs the scenario's own sizes to show every time.
	p.Settings.Concurrency = 50
	p.Scenarios = []ScenarioCells{{Scenario: oversell(t), Strategies: []string{impl.StockNaive, impl.StockLua}}}
	stock, err := scenarios.LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	p.Loads = []LoadCells{{Operation: stock, Strategies: []string{impl.StockLua}, Shape: LoadShape{Requests: 300}}}
	p.Outputs = []Output{{Path: filepath.Join(t.TempDir(), "r.json"), Format: reports.FormatJSON}}
	var started, done int
	p.OnEvent = func(e Event) {
		switch e.Type {
		case CellStarted:
			started++
			// Each cell's keys are deleted when it ends: the next one
			// starts on a server holding none of the run's keys but its
			// marker.
			for _, k := range keysUnder(t, p, p.Keys.Pattern()) {
				if k != p.Keys.Key("paybench-run") {
					t.Errorf("cell %d starts with an earlier cell's key %s", e.Index, k)
					break
				}
			}
		case CellDone:
			done++
			if e.Total != 6 || e.Index != done {
				t.Errorf("event %d of %d, want %d of 6", e.Index, e.Total, done)
			}
		}
	}
	doc, err := runPlan(t, p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]result.Verdict{
		"oversell/goredis/naive": result.Reproduced, "oversell/goredis/lua": result.Pass,
		"oversell/rueidis/naive": result.Reproduced, "oversell/rueidis/lua": result.Pass,
		"stock.deduct/goredis/lua": result.Measured, "stock.deduct/rueidis/lua": result.Measured,
	}
	if len(doc.Cells) != len(want) || started != 6 || done != 6 {
		t.Fatalf("%d cells, %d started, %d done; want 6", len(doc.Cells), started, done)
	}
	for _, c := range doc.Cells {
		if c.Verdict != want[c.Key()] {
			t.Errorf("%s: %s (%s%s), want %s", c.Key(), c.Verdict, c.Summary, c.Reason, want[c.Key()])
		}
	}
	if c := doc.Cells[4]; c.Ops != 300 || c.Params["loop"] != "closed" {
		t.Errorf("load cell: %d ops, params %v", c.Ops, c.Params)
	}
	if err := VerdictError(doc); err != nil {
		t.Errorf("verdicts: %v", err)
	}
	if left := keysUnder(t, p, p.Keys.Pattern()); len(left) != 0 {
		t.Errorf("keys left under the run prefix: %v", left)
	}
	if _, err := os.Stat(p.Outputs[0].Path); err != nil {
		t.Errorf("JSON not written: %v", err)
	}
	if doc.Kind != "run" || doc.Fairness.Server.Version == "" || doc.Tool.Version == "" {
		t.Errorf("document facts: kind %q server %+v tool %+v", doc.Kind, doc.Fairness.Server, doc.Tool)
	}
}

func TestPrefixes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		check       bool
		share       bool
		wantCode    errext.ExitCode
		wantErr     string
		wantSurvive bool
	}{
		{name: "a prefix holding keys is refused", check: true, wantCode: errext.Usage, wantErr: "already holds keys", wantSurvive: true},
		{name: "shared on purpose: runs, and deletes only its cells' keys", check: true, share: true, wantCode: errext.OK, wantSurvive: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan(t)
			p.Backends = []string{impl.GoRedis}
			p.Scenarios = []ScenarioCells{{Scenario: oversell(t, "--stock", "5", "--buyers", "10"), Strategies: []string{impl.StockLua}}}
			p.CheckPrefix, p.SharePrefix = tc.check, tc.share
			admin := p.Server.Admin()
			ctx := context.Background()
			// A user's key that merely shares the prefix, and one that
			// looks like a cell's but is not the run's.
			foreign := []string{p.Keys.Key("user-key"), p.Keys.Key("oversell-notes")}
			for _, k := range foreign {
				if err := admin.Set(ctx, k, "mine", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			doc, err := runPlan(t, p)
			code, _ := errext.Code(err)
			if code != tc.wantCode || (tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v (code %d), want code %d with %q", err, code, tc.wantCode, tc.wantErr)
			}
			if tc.wantCode == errext.Usage && doc != nil {
				t.Errorf("a refused run returned a document with %d cells", len(doc.Cells))
			}
			for _, k := range foreign {
				if n, _ := admin.Exists(ctx, k).Result(); (n == 1) != tc.wantSurvive {
					t.Errorf("key %s exists=%d", k, n)
				}
			}
			if left := keysUnder(t, p, p.Keys.Pattern()); len(left) != len(foreign) {
				t.Errorf("keys under the prefix after the run: %v", left)
			}
		})
	}
}

func TestTwoRunsOnOnePrefixAreDetected(t *testing.T) {
	p := testPlan(t)
	// Another run holds the prefix: its marker key is there.
	if err := p.Server.Admin().Set(context.Background(), p.Keys.Key("paybench-run"), "other host pid 1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p.Scenarios = []ScenarioCells{{Scenario: oversell(t), Strategies: []string{impl.StockLua}}}
	_, err := runPlan(t, p)
	if code, _ := errext.Code(err); code != errext.Usage || !strings.Contains(err.Error(), "in use by another paybench run") {
		t.Fatalf("err %v, want a usage error naming the other run", err)
	}
}

func TestOutputsAreCheckedBeforeAnyWork(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		outs []Output
		want string
	}{
		{"missing directory", []Output{{Path: "/nonexistent/dir/x.json", Format: reports.FormatJSON}}, "cannot write in /nonexistent/dir"},
		{"a directory", []Output{{Path: dir, Format: reports.FormatHTML}}, "is a directory"},
		{"two formats, one file", []Output{{Path: filepath.Join(dir, "a"), Format: reports.FormatJSON}, {Path: filepath.Join(dir, "a"), Format: reports.FormatHTML}}, "both write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan(t)
			p.Scenarios = []ScenarioCells{{Scenario: oversell(t), Strategies: []string{impl.StockLua}}}
			p.Outputs = tc.outs
			ran := false
			p.OnEvent = func(Event) { ran = true }
			doc, err := runPlan(t, p)
			if code, _ := errext.Code(err); code != errext.Usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want a usage error with %q", err, tc.want)
			}
			if doc != nil || ran {
				t.Fatal("work started before the outputs were checked")
			}
		})
	}
}

func TestInterruptedCellIsNotJudged(t *testing.T) {
	p := testPlan(t)
	p.Backends = []string{impl.GoRedis}
	p.Scenarios = []ScenarioCells{{Scenario: oversell(t, "--stock", "1000000", "--buyers", "100000000", "--think", "1ms"), Strategies: []string{impl.StockNaive, impl.StockLua}}}
	ctx, cancel := context.WithCancel(context.Background())
	p.OnEvent = func(e Event) {
		if e.Type == CellStarted {
			time.AfterFunc(300*time.Millisecond, cancel)
		}
	}
	done := make(chan struct{})
	var doc *result.Document
	var err error
	go func() {
		defer close(done)
		doc, err = Run(ctx, p)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("an interrupted run did not end")
	}
	if code, _ := errext.Code(err); code != errext.Interrupted {
		t.Fatalf("err %v, want Interrupted", err)
	}
	if !doc.Interrupted || len(doc.Cells) != 1 {
		t.Fatalf("interrupted %v with %d cells, want 1", doc.Interrupted, len(doc.Cells))
	}
	c := doc.Cells[0]
	if c.Verdict != result.Inconclusive || !c.Interrupted || len(c.Invariants) > 0 && c.Verdict != result.Inconclusive {
		t.Errorf("interrupted cell: %s interrupted=%v (%s)", c.Verdict, c.Interrupted, c.Reason)
	}
	if left := keysUnder(t, p, p.Keys.Pattern()); len(left) != 0 {
		t.Errorf("an interrupted run left %d keys", len(left))
	}
}

func TestServerChangesMakeACellInconclusive(t *testing.T) {
	p := testPlan(t)
	r := &run{plan: p, doc: &result.Document{}}
	ctx := context.Background()
	if _, err := r.cellKeyspace("fake", "goredis", "x"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		alter func(m *serverMark)
		want  string
	}{
		{"same server", func(*serverMark) {}, ""},
		{"restarted", func(m *serverMark) { m.runID = "0123456789abcdef" }, "restarted"},
		{"keys lost", func(m *serverMark) { p.Server.Admin().Del(ctx, m.sentinel) }, "vanished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := r.watchServer(ctx)
			if !m.ok || m.sentinel == "" {
				t.Fatalf("watch: %+v", m)
			}
			tc.alter(&m)
			got := r.checkServer(ctx, m, false)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("checkServer = %q, want %q", got, tc.want)
			}
			c, err := r.complete(ctx, result.Cell{Expect: result.Hold}, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := result.Pass; tc.want != "" {
				want = result.Inconclusive
				if c.Verdict != want {
					t.Errorf("verdict %s, want %s", c.Verdict, want)
				}
			}
		})
	}
}

func TestCompleteNeverPassesFailedWork(t *testing.T) {
	r := &run{plan: testPlan(t), doc: &result.Document{}}
	ctx := context.Background()
	holds := []result.Invariant{{Name: "ok", Holds: true}}
	broken := []result.Invariant{{Name: "ok", Holds: false}}
	for _, tc := range []struct {
		name string
		cell result.Cell
		err  error
		want result.Verdict
	}{
		{"every operation answered", result.Cell{Expect: result.Hold, Ops: 10, Invariants: holds}, nil, result.Pass},
		{"refusals are answers", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"contention": 3}, Invariants: holds}, nil, result.Pass},
		{"all failed: no vacuous PASS", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"noperm": 10}, ErrorSamples: map[string]string{"noperm": "NOPERM no scripts"}, Invariants: holds}, nil, result.Inconclusive},
		{"a FAIL amid failures is not blamed on the strategy", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"timeout": 1}, Invariants: broken}, nil, result.Inconclusive},
		{"lost replies settled against the server", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"timeout": 2}, Settled: 2, Invariants: holds}, nil, result.Pass},
		{"some lost replies not settled", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"timeout": 2, "noperm": 1}, Settled: 2, Invariants: holds}, nil, result.Inconclusive},
		{"refused dials under a fault that fired are excused", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"refused": 4}, Faults: []result.Fault{{Kind: "restart", Count: 1}}, Invariants: holds}, nil, result.Pass},
		{"refused dials without a fault are not", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"refused": 4}, Invariants: holds}, nil, result.Inconclusive},
		{"NOPERM is never excused by a fault", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"noperm": 4}, Faults: []result.Fault{{Kind: "pause", Count: 1}}, Invariants: holds}, nil, result.Inconclusive},
		{"a proven break stands amid failures", result.Cell{Expect: result.Break, Ops: 10, Errors: map[string]int64{"refused": 3}, Invariants: []result.Invariant{{Name: "ok", Holds: false, Proven: true}}}, nil, result.Reproduced},
		{"an unproven break amid failures is not judged", result.Cell{Expect: result.Break, Ops: 10, Errors: map[string]int64{"refused": 3}, Invariants: broken}, nil, result.Inconclusive},
		{"a proven break does not make a FAIL amid failures", result.Cell{Expect: result.Hold, Ops: 10, Errors: map[string]int64{"refused": 3}, Invariants: []result.Invariant{{Name: "ok", Holds: false, Proven: true}}}, nil, result.Inconclusive},
		{"a load settled against the server", result.Cell{Ops: 10, Errors: map[string]int64{"timeout": 1}, Settled: 1}, nil, result.Measured},
		{"a load under a fault measures its failures", result.Cell{Ops: 10, Errors: map[string]int64{"connection": 3}, Faults: []result.Fault{{Kind: "reset", Count: 1}}}, nil, result.Measured},
		{"a load of failures", result.Cell{Ops: 10, Errors: map[string]int64{"oom": 10}}, nil, result.Inconclusive},
		{"bookkeeping failed", result.Cell{Expect: result.Hold, Ops: 10, Invariants: holds}, scenarios.JudgementError(errors.New("read final stock: i/o timeout")), result.Inconclusive},
		{"could not run", result.Cell{Expect: result.Hold}, errors.New("seed stock: NOPERM"), result.Error},
		{"a fault stopped its setup", result.Cell{Expect: result.Hold, Faults: []result.Fault{{Kind: "restart", Count: 1}}}, errors.New("seed stock: read tcp 1.2.3.4:5: connection reset by peer"), result.Inconclusive},
		{"unsupported", result.Cell{Expect: result.Hold}, impl.ErrNotSupported, result.Unsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := r.complete(ctx, tc.cell, serverMark{}, tc.err)
			if c.Verdict != tc.want {
				t.Fatalf("verdict %s (%s), want %s", c.Verdict, c.Reason, tc.want)
			}
			if c.Verdict == result.Inconclusive && c.Reason == "" {
				t.Error("INCONCLUSIVE without a reason")
			}
			if strings.Contains(tc.name, "all failed") && !strings.Contains(c.Reason, "NOPERM no scripts") {
				t.Errorf("reason does not quote the server: %q", c.Reason)
			}
			if c.Ops != tc.cell.Ops {
				t.Errorf("figures discarded: ops %d, want %d", c.Ops, tc.cell.Ops)
			}
		})
	}
}

func TestVerdictError(t *testing.T) {
	for _, tc := range []struct {
		verdicts []result.Verdict
		want     errext.ExitCode
	}{
		{[]result.Verdict{result.Pass, result.Reproduced, result.Measured, result.Unsupported}, errext.OK},
		{[]result.Verdict{result.NotReproduced, result.Pass}, errext.NotReproduced},
		{[]result.Verdict{result.NotReproduced, result.Inconclusive}, errext.Inconclusive},
		{[]result.Verdict{result.Inconclusive, result.Error}, errext.Fail},
		{[]result.Verdict{result.Fail}, errext.Fail},
	} {
		doc := &result.Document{}
		for _, v := range tc.verdicts {
			doc.Cells = append(doc.Cells, result.Cell{Scenario: "s", Backend: "b", Strategy: "x", Verdict: v, Reason: "why"})
		}
		err := VerdictError(doc)
		if code, _ := errext.Code(err); code != tc.want {
			t.Errorf("%v: code %d, want %d", tc.verdicts, code, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "s/b/x") {
			t.Errorf("%v: message %q does not name the cell", tc.verdicts, err)
		}
	}
}
