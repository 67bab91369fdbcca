package reports

import (
	"bytes"
	"strings"
	"testing"

	"github.com/paybench/paybench/reports/result"
)

// asExpected returns the fixture without its cells whose verdict is not as
// expected: a healthy result.
func asExpected(t *testing.T) *result.Document {
	t.Helper()
	doc := readFixture(t)
	var cells []result.Cell
	for _, c := range doc.Cells {
		if c.Verdict.AsExpected() {
			cells = append(cells, c)
		}
	}
	doc.Cells = cells
	return doc
}

var strict = CompareOptions{MaxP99Increase: 0.10, MaxThroughputDrop: 0.05, MaxErrorRate: -1}

func TestCompareWithItselfPasses(t *testing.T) {
	doc := asExpected(t)
	cmp := Compare(doc, doc, strict)
	if cmp.Failed() {
		t.Fatalf("a result compared with itself fails: %v", cmp.Failures())
	}
	var buf bytes.Buffer
	if err := cmp.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "compare: ok") {
		t.Errorf("no ok line:\n%s", buf.String())
	}
}

func TestCompareAgainstMuchBetterBaselineFails(t *testing.T) {
	newDoc := asExpected(t)
	base := asExpected(t)
	for i := range base.Cells {
		base.Cells[i].ThroughputOps *= 3
		base.Cells[i].Latency.Corrected.P99 /= 3
	}
	cmp := Compare(base, newDoc, strict)
	if !cmp.Failed() {
		t.Fatal("a much better baseline passes")
	}
	failures := strings.Join(cmp.Failures(), "\n")
	for _, c := range newDoc.Cells {
		if c.Ops == 0 {
			continue
		}
		for _, want := range []string{c.Key() + ": p99", c.Key() + ": throughput"} {
			if !strings.Contains(failures, want) {
				t.Errorf("failures do not name %q:\n%s", want, failures)
			}
		}
	}
}

func TestCompareFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(base, newDoc *result.Document)
		opt    CompareOptions
		want   string // a failure containing this
	}{
		{"broken invariant", func(_, n *result.Document) {
			n.Cells[2].Invariants[0].Holds = false
			n.Cells[2].Judge()
		}, strict, "oversell/goredis/lua: verdict PASS → FAIL"},
		{"invariant broken in a measured cell", func(_, n *result.Document) {
			n.Cells[5].Invariants = []result.Invariant{{Name: "stock conserved", Holds: false, Detail: "3 units lost"}}
		}, strict, "stock.deduct/goredis/lua: invariant broken: stock conserved: 3 units lost"},
		{"missing cell", func(_, n *result.Document) { n.Cells = n.Cells[1:] }, strict,
			"oversell/goredis/naive: in the base but missing from the new result"},
		{"error cell", func(_, n *result.Document) {
			n.Cells[0].Verdict, n.Cells[0].Error = result.Error, "connection reset"
		}, strict, "oversell/goredis/naive: verdict REPRODUCED → ERROR: connection reset"},
		{"p99 up", func(_, n *result.Document) { n.Cells[3].Latency.Corrected.P99 *= 2 }, strict, "oversell/rueidis/lua: p99"},
		{"throughput down", func(_, n *result.Document) { n.Cells[3].ThroughputOps *= 0.9 }, strict, "oversell/rueidis/lua: throughput"},
		{"error rate", func(_, n *result.Document) {}, CompareOptions{MaxP99Increase: -1, MaxThroughputDrop: -1, MaxErrorRate: 0.0001},
			"stock.deduct/goredis/lua: error rate 0.015% of 20000 operations, more than 0.01%"},
		{"perf cells select", func(_, n *result.Document) {
			n.Cells[5].ThroughputOps /= 2
			n.Cells[0].ThroughputOps /= 2
		}, CompareOptions{MaxP99Increase: 0.1, MaxThroughputDrop: 0.05, MaxErrorRate: -1, PerfCells: []string{"*.*"}},
			"stock.deduct/goredis/lua: throughput"},
		{"absolute gate", func(_, n *result.Document) {}, CompareOptions{MaxP99Increase: -1, MaxThroughputDrop: -1, MaxErrorRate: -1,
			Gates: mustGates(t, "oversell:p99<10ms")}, "oversell/goredis/naive: gate oversell:p99<10ms failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, newDoc := asExpected(t), asExpected(t)
			tc.change(base, newDoc)
			cmp := Compare(base, newDoc, tc.opt)
			if !cmp.Failed() {
				t.Fatal("passes")
			}
			f := strings.Join(cmp.Failures(), "\n")
			if !strings.Contains(f, tc.want) {
				t.Errorf("failures lack %q:\n%s", tc.want, f)
			}
			if tc.opt.PerfCells != nil && strings.Contains(f, "oversell/goredis/naive") {
				t.Errorf("a threshold judged a cell outside --perf-cells:\n%s", f)
			}
		})
	}
}

func TestCompareToleratesWhatIsNotARegression(t *testing.T) {
	base, newDoc := asExpected(t), asExpected(t)
	newDoc.Cells[3].Latency.Corrected.P99 = newDoc.Cells[3].Latency.Corrected.P99 * 105 / 100 // +5% < 10%
	newDoc.Cells[3].ThroughputOps *= 1.5                                                      // faster
	newDoc.Cells[0].Verdict = result.NotReproduced                                            // noted, not failed
	newDoc.Cells[1].ThroughputOps /= 2                                                        // outside the selected cells
	newDoc.Cells = append(newDoc.Cells, result.Cell{Scenario: "new", Backend: "goredis", Strategy: "x", Verdict: result.Pass})
	opt := strict
	opt.PerfCells = []string{"oversell/*/lua", "stock.deduct"}
	cmp := Compare(base, newDoc, opt)
	if cmp.Failed() {
		t.Fatalf("fails: %v", cmp.Failures())
	}
	var buf bytes.Buffer
	if err := cmp.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"note oversell/goredis/naive: the bug did not reproduce", "note new/goredis/x: new cell"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}

func mustGates(t *testing.T, s string) []Gate {
	t.Helper()
	g, err := ParseGates(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestCompareCellsThatCannotBeJudged: an interrupted cell of the new
// result counts as missing (never as a verdict change), an INCONCLUSIVE
// one is listed but not judged, and a base cell of either kind gives no
// figures to compare with.
func TestCompareCellsThatCannotBeJudged(t *testing.T) {
	const lua = 2 // oversell/goredis/lua, PASS
	breakIt := func(c *result.Cell) {
		c.Invariants[0].Holds = false
		c.Judge()
		c.Latency.Corrected.P99 *= 10
		c.ThroughputOps /= 10
	}
	for _, tc := range []struct {
		name    string
		change  func(base, newDoc *result.Document)
		opt     CompareOptions
		failed  bool
		want    []string // in the text output
		notWant []string
	}{
		{"new result interrupted", func(_, n *result.Document) {
			n.Interrupted = true
			breakIt(&n.Cells[lua])
		}, strict, true, []string{
			"FAIL oversell/goredis/lua: not compared: interrupted (the new result's figures are partial; counted as missing)",
			"FAIL stock.deduct/rueidis/lua: not compared: interrupted",
			"PASS → FAIL (interrupted)",
		}, []string{"FAIL oversell/goredis/lua: verdict", "invariant broken", ": p99", ": throughput"}},
		{"new cell interrupted", func(_, n *result.Document) {
			n.Cells[lua].Interrupted = true
			breakIt(&n.Cells[lua])
		}, strict, true, []string{"FAIL oversell/goredis/lua: not compared: interrupted", "compare: FAIL (1 failures)"},
			[]string{"verdict PASS → FAIL:", "invariant broken", ": p99"}},
		{"interrupted cell only in the new result", func(_, n *result.Document) {
			n.Cells = append(n.Cells, result.Cell{Scenario: "checkout", Backend: "goredis", Strategy: "safe", Verdict: result.Fail, Interrupted: true})
		}, strict, false, []string{"note checkout/goredis/safe: new cell, not in the base", "note checkout/goredis/safe: not compared: interrupted", "compare: ok"}, nil},
		{"new cell inconclusive", func(_, n *result.Document) {
			breakIt(&n.Cells[lua])
			n.Cells[lua].Verdict, n.Cells[lua].Reason = result.Inconclusive, "the server restarted"
			n.Cells[lua].Errors = map[string]int64{"connection reset": 900}
		}, CompareOptions{MaxP99Increase: 0.1, MaxThroughputDrop: 0.05, MaxErrorRate: 0.01}, false, []string{
			"note oversell/goredis/lua: not judged: INCONCLUSIVE: the server restarted",
			"PASS → INCONCLUSIVE",
			"skip",
			"compare: ok",
		}, []string{"FAIL oversell/goredis/lua"}},
		{"base cell inconclusive", func(b, n *result.Document) {
			b.Cells[lua].Verdict = result.Inconclusive
			n.Cells[lua].Latency.Corrected.P99 *= 10
		}, strict, false, []string{"note oversell/goredis/lua: not compared with the base: INCONCLUSIVE there", "compare: ok"},
			[]string{"note oversell/goredis/lua: verdict INCONCLUSIVE → PASS"}},
		{"base cell inconclusive, new cell fails", func(b, n *result.Document) {
			b.Cells[lua].Verdict = result.Inconclusive
			breakIt(&n.Cells[lua])
		}, strict, true, []string{"FAIL oversell/goredis/lua: verdict FAIL", "FAIL oversell/goredis/lua: invariant broken"},
			[]string{"verdict INCONCLUSIVE → FAIL", "oversell/goredis/lua: p99"}},
		{"base interrupted", func(b, n *result.Document) {
			b.Interrupted = true
			n.Cells[lua].ThroughputOps /= 10
		}, strict, false, []string{"note oversell/goredis/lua: not compared with the base: interrupted there", "compare: ok"}, nil},
		{"gates skip an interrupted new result", func(_, n *result.Document) {
			n.Interrupted = true
			n.Cells = nil
		}, CompareOptions{MaxP99Increase: -1, MaxThroughputDrop: -1, MaxErrorRate: -1, Gates: mustGates(t, "p99<1us")}, true,
			[]string{"in the base but missing from the new result"}, []string{"gate"}},
		{"gates skip an interrupted new cell", func(_, n *result.Document) {
			for i := range n.Cells {
				n.Cells[i].Interrupted = true
			}
		}, CompareOptions{MaxP99Increase: -1, MaxThroughputDrop: -1, MaxErrorRate: -1, Gates: mustGates(t, "p99<1us")}, true,
			[]string{"not compared: interrupted"}, []string{"gate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, newDoc := asExpected(t), asExpected(t)
			tc.change(base, newDoc)
			cmp := Compare(base, newDoc, tc.opt)
			var buf bytes.Buffer
			if err := cmp.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if cmp.Failed() != tc.failed {
				t.Errorf("failed = %v, want %v:\n%s", cmp.Failed(), tc.failed, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			buf.Reset()
			if err := cmp.WriteMarkdown(&buf); err != nil {
				t.Fatal(err)
			}
			for _, cc := range cmp.Cells {
				if cc.NotCompared != "" && !strings.Contains(buf.String(), mdEscape(cc.NotCompared)) {
					t.Errorf("markdown does not say %q:\n%s", cc.NotCompared, buf.String())
				}
			}
		})
	}
}
