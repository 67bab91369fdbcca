package reports

import (
	"errors"
	"math"
	"testing"

	"github.com/paybench/paybench/reports/result"
)

func TestParseGate(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want Gate
	}{
		{"p99<5ms", Gate{Metric: "p99", Op: "<", Value: 5000}},
		{" p50 <= 250us ", Gate{Metric: "p50", Op: "<=", Value: 250}},
		{"p90<1.5ms", Gate{Metric: "p90", Op: "<", Value: 1500}},
		{"p999<=0.2s", Gate{Metric: "p999", Op: "<=", Value: 200000}},
		{"max<2s", Gate{Metric: "max", Op: "<", Value: 2e6}},
		{"mean<800µs", Gate{Metric: "mean", Op: "<", Value: 800}},
		{"P99<5ms", Gate{Metric: "p99", Op: "<", Value: 5000}},
		{"throughput>20000", Gate{Metric: "throughput", Op: ">", Value: 20000}},
		{"throughput>=1e4ops/s", Gate{Metric: "throughput", Op: ">=", Value: 10000}},
		{"errors<=0", Gate{Metric: "errors", Op: "<=", Value: 0}},
		{"dropped<10", Gate{Metric: "dropped", Op: "<", Value: 10}},
		{"error_rate<1%", Gate{Metric: "error_rate", Op: "<", Value: 0.01}},
		{"error_rate<0.001", Gate{Metric: "error_rate", Op: "<", Value: 0.001}},
		{"oversell/*/lua:p99<5ms", Gate{Cells: "oversell/*/lua", Metric: "p99", Op: "<", Value: 5000}},
		{"stock.*:throughput>100", Gate{Cells: "stock.*", Metric: "throughput", Op: ">", Value: 100}},
	} {
		got, err := ParseGate(tc.expr)
		if err != nil {
			t.Errorf("ParseGate(%q): %v", tc.expr, err)
			continue
		}
		tc.want.Expr = got.Expr
		if got != tc.want || math.Abs(got.Value-tc.want.Value) > 1e-9 {
			t.Errorf("ParseGate(%q) = %+v, want %+v", tc.expr, got, tc.want)
		}
	}
}

func TestParseGateRejectsBadExpressions(t *testing.T) {
	for _, expr := range []string{
		"",                  // nothing
		"p99",               // no operator
		"p99 5ms",           // no operator
		"p99=5ms",           // = is not a gate operator
		"p99==5ms",          // nor ==
		"p99!=5ms",          // nor !=
		"p99<",              // no value
		"<5ms",              // no metric
		"p99<5",             // latency without a unit
		"p99<5 parsecs",     // unknown unit
		"p99<-5ms",          // negative
		"p99<fast",          // not a number
		"p99<NaNms",         // not a finite number
		"p42<5ms",           // unknown metric
		"latency<5ms",       // unknown metric
		"throughput>lots",   // not a number
		"throughput>-1",     // negative
		"error_rate<5",      // a rate above 1 without %
		"error_rate<150%",   // above 100%
		"p99<5ms<6ms",       // two operators
		"p99<>5ms",          // two operators
		":p99<5ms",          // empty selector
		"[oversell:p99<5ms", // bad glob
		"throughput>>20000", // doubled operator
	} {
		if g, err := ParseGate(expr); err == nil {
			t.Errorf("ParseGate(%q) = %+v, want an error", expr, g)
		} else if !errors.Is(err, ErrBadGate) {
			t.Errorf("ParseGate(%q): %v does not wrap ErrBadGate", expr, err)
		}
	}
}

func TestParseGates(t *testing.T) {
	gs, err := ParseGates("p99<5ms, throughput>20000,,error_rate<1%")
	if err != nil || len(gs) != 3 || gs[1].Metric != "throughput" {
		t.Fatalf("ParseGates = %+v, %v", gs, err)
	}
	if _, err := ParseGates("p99<5ms,p99"); err == nil {
		t.Fatal("a bad item in a list passed")
	}
}

func TestJudgeGates(t *testing.T) {
	doc := &result.Document{Cells: []result.Cell{
		{Scenario: "oversell", Backend: "goredis", Strategy: "lua", Verdict: result.Pass, Ops: 1000, ThroughputOps: 25000,
			Latency: result.Latency{Corrected: result.Summary{P50: 900, P99: 4000, Max: 9000, Mean: 1100}}},
		{Operation: "stock.deduct", Backend: "rueidis", Strategy: "lua", Verdict: result.Measured, Ops: 1000, ThroughputOps: 15000,
			Errors: map[string]int64{"timeout": 20}, Dropped: 3,
			Latency: result.Latency{Corrected: result.Summary{P50: 300, P99: 6000, Max: 20000}}},
		{Scenario: "oversell", Backend: "rueidis", Strategy: "lua", Verdict: result.Unsupported},
		// Never judged: a cell that cannot be, and an interrupted one.
		{Scenario: "lock-race", Backend: "goredis", Strategy: "token", Verdict: result.Inconclusive, Reason: "the server restarted",
			Ops: 10, Latency: result.Latency{Corrected: result.Summary{P50: 1e6, P99: 1e7, Max: 1e7}}},
		{Scenario: "checkout", Backend: "goredis", Strategy: "safe", Verdict: result.Pass, Interrupted: true,
			Ops: 10, Latency: result.Latency{Corrected: result.Summary{P50: 1e6, P99: 1e7, Max: 1e7}}},
	}}
	for _, tc := range []struct {
		gates string
		want  []bool // per (gate, selected cell), in order
	}{
		{"p99<5ms", []bool{true, false}},
		{"p99<=6ms", []bool{true, true}},
		{"throughput>20000", []bool{true, false}},
		{"throughput>=15000", []bool{true, true}},
		{"errors<=0", []bool{true, false}},
		{"error_rate<1%", []bool{true, false}},
		{"error_rate<=0.02", []bool{true, true}},
		{"dropped<1", []bool{true, false}},
		{"mean<1ms", []bool{false, true}},
		{"max<10ms", []bool{true, false}},
		{"oversell:p99<5ms", []bool{true}},
		{"*/rueidis:p99<5ms", []bool{false}},
		{"stock.deduct/*/lua:p50<500us", []bool{true}},
		{"nosuch:p99<5ms", nil},
	} {
		gates, err := ParseGates(tc.gates)
		if err != nil {
			t.Fatal(err)
		}
		out := JudgeGates(doc, gates)
		var got []bool
		for _, o := range out {
			got = append(got, o.Holds)
			switch o.Cell {
			case "oversell/rueidis/lua", "lock-race/goredis/token", "checkout/goredis/safe":
				t.Errorf("%s judged %s, an UNSUPPORTED, INCONCLUSIVE or interrupted cell", tc.gates, o.Cell)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d outcomes %v, want %v", tc.gates, len(got), got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: outcome %d = %v, want %v (%+v)", tc.gates, i, got[i], tc.want[i], out[i])
			}
		}
	}
}

// TestJudgeGatesSkipsAnInterruptedDocument: its figures are partial, so
// its cells are treated as missing.
func TestJudgeGatesSkipsAnInterruptedDocument(t *testing.T) {
	doc := &result.Document{Interrupted: true, Cells: []result.Cell{
		{Scenario: "oversell", Backend: "goredis", Strategy: "lua", Verdict: result.Pass, Ops: 1000,
			Latency: result.Latency{Corrected: result.Summary{P99: 4000}}},
	}}
	if out := JudgeGates(doc, mustGates(t, "p99<1ms,p99<1s")); len(out) != 0 {
		t.Errorf("gates judged on an interrupted document: %+v", out)
	}
	doc.Interrupted = false
	if out := JudgeGates(doc, mustGates(t, "p99<1ms,p99<1s")); len(out) != 2 {
		t.Errorf("%d outcomes, want 2", len(out))
	}
}

func TestDescribeGate(t *testing.T) {
	got := DescribeGate(result.GateOutcome{Gate: "p99<5ms", Cell: "oversell/goredis/naive", Value: 24340, Holds: false})
	if want := "FAIL p99<5ms on oversell/goredis/naive: p99 is 24.34ms"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEvalRule(t *testing.T) {
	figs := map[string]float64{"units_sold": 100, "stock_initial": 100, "stock_final": 0, "oversold": 3}
	for _, tc := range []struct {
		rule  string
		holds bool
		bad   bool
	}{
		{"units_sold <= stock_initial", true, false},
		{"oversold <= 0", false, false},
		{"stock_final>=0", true, false},
		{"units_sold == 100", true, false},
		{"units_sold != stock_initial", false, false},
		{"oversold > 2.5", true, false},
		{"nosuch <= 0", false, true},
		{"units_sold", false, true},
		{"<= 3", false, true},
		{"a <= b <= c", false, true},
	} {
		holds, err := EvalRule(tc.rule, figs)
		if (err != nil) != tc.bad || (err == nil && holds != tc.holds) {
			t.Errorf("EvalRule(%q) = %v, %v; want %v (error: %v)", tc.rule, holds, err, tc.holds, tc.bad)
		}
	}
}

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]float64{"10%": 0.1, "0.05": 0.05, "none": -1, "": -1, "0%": 0, "250%": 2.5} {
		if got, err := ParsePercent(in); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"ten", "-5%", "%"} {
		if _, err := ParsePercent(in); err == nil {
			t.Errorf("ParsePercent(%q): no error", in)
		}
	}
}
