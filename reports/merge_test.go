package reports

import (
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/reports/result"
)

// TestMergeAddsHistogramsExactly merges two results of the same run and
// checks every histogram is the exact sum of the inputs', and that the
// summaries, counts and throughputs follow.
func TestMergeAddsHistogramsExactly(t *testing.T) {
	a, b := roundTrip(t, buildFixture(t, 1)), roundTrip(t, buildFixture(t, 2))
	b.Host = "loadgen-2"
	merged, warnings, err := Merge([]MergeInput{{"a.json", a}, {"b.json", b}})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	if len(merged.Cells) != len(a.Cells) || len(merged.Sources) != 2 || merged.Sources[1].Host != "loadgen-2" {
		t.Fatalf("%d cells, sources %+v", len(merged.Cells), merged.Sources)
	}
	// The merged document survives JSON as any other.
	merged = roundTrip(t, merged)
	for i := range merged.Cells {
		m, ca, cb := &merged.Cells[i], &a.Cells[i], &b.Cells[i]
		if m.Key() != ca.Key() {
			t.Fatalf("cell %d is %s, want %s", i, m.Key(), ca.Key())
		}
		if m.Ops != ca.Ops+cb.Ops || m.ThroughputOps != ca.ThroughputOps+cb.ThroughputOps || m.Dropped != ca.Dropped+cb.Dropped {
			t.Errorf("%s: ops %d, throughput %v, dropped %d: not the sums", m.Key(), m.Ops, m.ThroughputOps, m.Dropped)
		}
		if ErrorCount(m) != ErrorCount(ca)+ErrorCount(cb) {
			t.Errorf("%s: %d errors, want %d", m.Key(), ErrorCount(m), ErrorCount(ca)+ErrorCount(cb))
		}
		for class, msg := range ca.ErrorSamples {
			if m.ErrorSamples[class] != msg {
				t.Errorf("%s: error sample of %s is %q, want the first input's %q", m.Key(), class, m.ErrorSamples[class], msg)
			}
		}
		if len(m.ErrorSamples) != len(ca.ErrorSamples) {
			t.Errorf("%s: error samples %v, want %v", m.Key(), m.ErrorSamples, ca.ErrorSamples)
		}
		if m.Generators != 2 {
			t.Errorf("%s: generators %d", m.Key(), m.Generators)
		}
		for _, k := range HistogramKeys(ca) {
			want, _ := CellHistogram(ca, k)
			hb, _ := CellHistogram(cb, k)
			want.Merge(hb)
			got, err := CellHistogram(m, k)
			if err != nil || got == nil {
				t.Fatalf("%s %s: %v", m.Key(), k, err)
			}
			if !got.Equals(want) || got.TotalCount() != ca.Latency.Corrected.Count+cb.Latency.Corrected.Count && k == result.HistogramCorrected {
				t.Errorf("%s %s: the merged histogram is not the sum of the inputs'", m.Key(), k)
			}
			if k == result.HistogramCorrected && m.Latency.Corrected != result.Summarize(want) {
				t.Errorf("%s: summary %+v, want %+v", m.Key(), m.Latency.Corrected, result.Summarize(want))
			}
			if k == result.HistogramUncorrected && m.Latency.Uncorrected != result.Summarize(want) {
				t.Errorf("%s: uncorrected summary %+v, want %+v", m.Key(), m.Latency.Uncorrected, result.Summarize(want))
			}
		}
		for j, p := range m.Series {
			if p.Ops != ca.Series[j].Ops+cb.Series[j].Ops {
				t.Errorf("%s: series point %d has %d ops, want the sum", m.Key(), j, p.Ops)
			}
			for class, n := range p.ErrorsByClass {
				if want := ca.Series[j].ErrorsByClass[class] + cb.Series[j].ErrorsByClass[class]; n != want {
					t.Errorf("%s: series point %d has %d %s errors, want the sum %d", m.Key(), j, n, class, want)
				}
			}
			if len(p.ErrorsByClass) == 0 && p.Errors > 0 {
				t.Errorf("%s: series point %d lost its errors' classes", m.Key(), j)
			}
		}
		if ca.Verdict == result.Unsupported && m.Verdict != result.Unsupported {
			t.Errorf("%s: %s, want UNSUPPORTED", m.Key(), m.Verdict)
		}
	}
	if st := merged.Cells[2].Steps["deduct"]; st.Corrected.Count != 2000 {
		t.Errorf("step deduct has %d values, want 2000", st.Corrected.Count)
	}
}

func TestMergeRejudgesInvariants(t *testing.T) {
	a, b := roundTrip(t, buildFixture(t, 1)), roundTrip(t, buildFixture(t, 2))
	// Generator B's lua cell saw stock at -1 mid-sale: the merged run did.
	c := &b.Cells[2]
	c.Figures["stock_min_observed"] = -1
	c.Invariants[1].Holds, c.Invariants[1].Detail = false, "lowest stock seen -1"
	c.Judge()
	// Generator B's order-record invariant has its own figures.
	c.Invariants[3].Detail = "99 order records, 99 purchases answered OK"
	merged, _, err := Merge([]MergeInput{{"a.json", a}, {"b.json", b}})
	if err != nil {
		t.Fatal(err)
	}
	m := merged.Cells[2]
	inv := map[string]result.Invariant{}
	for _, i := range m.Invariants {
		inv[i.Name] = i
	}
	if i := inv["stock never observed negative"]; i.Holds || i.Merged != result.Rejudged || !strings.Contains(i.Detail, "stock_min_observed (-1) >= 0") {
		t.Errorf("min-stock invariant: %+v", i)
	}
	if i := inv["units sold <= initial stock"]; !i.Holds || i.Merged != result.Rejudged || !strings.Contains(i.Detail, "units_sold (200) <= stock_initial (200)") {
		t.Errorf("units invariant: %+v", i)
	}
	if i := inv["order records == successful purchases"]; !i.Holds || i.Merged != result.Kept ||
		!strings.Contains(i.Detail, "a.json: 100 order records") || !strings.Contains(i.Detail, "b.json: 99 order records") {
		t.Errorf("kept invariant: %+v", i)
	}
	if m.Verdict != result.Fail {
		t.Errorf("verdict %s, want FAIL", m.Verdict)
	}
	if m.Figures["units_sold"] != 200 || m.Figures["stock_min_observed"] != -1 {
		t.Errorf("figures %v", m.Figures)
	}
	// The naive cells still reproduce on the combined figures.
	if merged.Cells[0].Verdict != result.Reproduced {
		t.Errorf("naive: %s", merged.Cells[0].Verdict)
	}
}

func TestMergeWarningsAndErrors(t *testing.T) {
	a, b := roundTrip(t, buildFixture(t, 1)), roundTrip(t, buildFixture(t, 2))
	b.Started = b.Started.Add(time.Minute)
	b.Cells = b.Cells[1:]
	b.Fairness.Server.Address = "redis://10.0.0.9:6379"
	_, warnings, err := Merge([]MergeInput{{"a.json", a}, {"b.json", b}})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(warnings, "\n")
	for _, want := range []string{"started 1m0s apart", "oversell/goredis/naive is in 1 of 2 inputs", "merging assumes one Redis"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	b.Kind = "load"
	if _, _, err := Merge([]MergeInput{{"a.json", a}, {"b.json", b}}); err == nil {
		t.Error("merged a suite with a load")
	}
	if _, _, err := Merge(nil); err == nil {
		t.Error("merged nothing")
	}
}

func TestMergeKeepsWhatCannotBeJudged(t *testing.T) {
	const lua, lock = 2, 6 // oversell/goredis/lua (PASS), lock-race/goredis/token (INCONCLUSIVE)
	for _, tc := range []struct {
		name        string
		change      func(a, b *result.Document)
		cell        int
		verdict     result.Verdict
		reason      string
		interrupted bool
	}{
		{"inconclusive in both", func(a, b *result.Document) {}, lock, result.Inconclusive,
			"the server restarted during the cell (run_id changed): the lock keys were lost", false},
		{"inconclusive in one", func(a, b *result.Document) {
			b.Cells[lua].Verdict, b.Cells[lua].Reason = result.Inconclusive, "the harness's reads failed"
		}, lua, result.Inconclusive, "the harness's reads failed", false},
		{"error wins", func(a, b *result.Document) {
			a.Cells[lua].Verdict, a.Cells[lua].Error = result.Error, "connection refused"
			b.Cells[lua].Verdict, b.Cells[lua].Reason = result.Inconclusive, "the harness's reads failed"
		}, lua, result.Error, "the harness's reads failed", false},
		{"interrupted in one", func(a, b *result.Document) { b.Cells[lua].Interrupted = true }, lua, result.Pass, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := roundTrip(t, buildFixture(t, 1)), roundTrip(t, buildFixture(t, 2))
			tc.change(a, b)
			merged, _, err := Merge([]MergeInput{{"a.json", a}, {"b.json", b}})
			if err != nil {
				t.Fatal(err)
			}
			m := merged.Cells[tc.cell]
			if m.Verdict != tc.verdict || m.Reason != tc.reason || m.Interrupted != tc.interrupted {
				t.Errorf("%s: verdict %s, reason %q, interrupted %v; want %s, %q, %v", m.Key(), m.Verdict, m.Reason, m.Interrupted,
					tc.verdict, tc.reason, tc.interrupted)
			}
		})
	}
}

// setParam sets a parameter on every cell of doc that has parameters, or
// deletes it for the value "".
func setParam(doc *result.Document, cells, name, value string) {
	for i := range doc.Cells {
		c := &doc.Cells[i]
		if c.Params == nil || cells != "" && !strings.HasPrefix(c.Key(), cells) {
			continue
		}
		p := map[string]string{}
		for k, v := range c.Params {
			p[k] = v
		}
		if value == "" {
			delete(p, name)
		} else {
			p[name] = value
		}
		c.Params = p
	}
}

func TestMergeWarnsOfInputsThatDiffer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(b *result.Document)
		want   []string // each in one warning; none: no warning
	}{
		{"nothing differs", func(*result.Document) {}, nil},
		{"seeds differ, as they should", func(b *result.Document) { setParam(b, "", "seed", "2") }, nil},
		{"workers peak differs", func(b *result.Document) { setParam(b, "stock.deduct", "workers_peak", "17") }, nil},
		{"buyers differ in every scenario cell", func(b *result.Document) { setParam(b, "oversell/", "buyers", "2000") },
			[]string{"parameter buyers differs between the inputs (1000 in a.json, 2000 in b.json) in oversell/goredis/naive, oversell/rueidis/naive, oversell/goredis/lua and 3 more cells"}},
		{"rate differs in every load", func(b *result.Document) { setParam(b, "stock.deduct", "rate", "9000") },
			[]string{"parameter rate differs between the inputs (5000 in a.json, 9000 in b.json) in stock.deduct/goredis/lua, stock.deduct/rueidis/lua: the merged figures"}},
		{"a parameter only one input has", func(b *result.Document) { setParam(b, "stock.deduct/rueidis", "duration", "10s") },
			[]string{"parameter duration differs between the inputs ((unset) in a.json, 10s in b.json) in stock.deduct/rueidis/lua"}},
		{"every cell", func(b *result.Document) {
			setParam(b, "", "concurrency", "64")
			for i := range b.Cells {
				if b.Cells[i].Params == nil {
					b.Cells[i].Params = map[string]string{"concurrency": "64"}
				}
			}
		}, []string{"parameter concurrency differs between the inputs ((unset) in a.json, 64 in b.json) in every cell"}},
		{"server version", func(b *result.Document) { b.Fairness.Server.Version = "7.2.4" },
			[]string{"b.json ran against redis 7.2.4, a.json against redis 7.0.15"}},
		{"server address", func(b *result.Document) { b.Fairness.Server.Address = "redis://10.0.0.9:6379" },
			[]string{"b.json ran against redis://10.0.0.9:6379, a.json against redis://127.0.0.1:6379: merging assumes one Redis"}},
		{"paybench version", func(b *result.Document) { b.Tool.Version = "0.2.0" },
			[]string{"b.json was written by paybench 0.2.0 (commit 0123456789abcdef0123456789abcdef01234567), a.json by paybench 0.1.0 (commit 0123456789abcdef0123456789abcdef01234567)"}},
		{"paybench commit", func(b *result.Document) { b.Tool.Commit = "" },
			[]string{"b.json was written by paybench 0.1.0, a.json by paybench 0.1.0 (commit 0123"}},
		{"an input's own warnings", func(b *result.Document) { b.Warnings = []string{"x.json ran against redis 6.2.0"} },
			[]string{"b.json: x.json ran against redis 6.2.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := roundTrip(t, buildFixture(t, 1)), roundTrip(t, buildFixture(t, 2))
			tc.change(b)
			merged, warnings, err := Merge([]MergeInput{{"a.json", a}, {"b.json", b}})
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != len(tc.want) {
				t.Errorf("%d warnings, want %d:\n%s", len(warnings), len(tc.want), strings.Join(warnings, "\n"))
			}
			for i, want := range tc.want {
				if i < len(warnings) && !strings.Contains(warnings[i], want) {
					t.Errorf("warning %q lacks %q", warnings[i], want)
				}
			}
			// The merged document records them.
			if got := roundTrip(t, merged).Warnings; strings.Join(got, "\n") != strings.Join(warnings, "\n") {
				t.Errorf("document warnings %q, want %q", got, warnings)
			}
		})
	}
}

func TestMergeOfMergesFlattensSources(t *testing.T) {
	a, b, c := roundTrip(t, buildFixture(t, 1)), roundTrip(t, buildFixture(t, 2)), roundTrip(t, buildFixture(t, 3))
	ab, _, err := Merge([]MergeInput{{"a", a}, {"b", b}})
	if err != nil {
		t.Fatal(err)
	}
	abc, _, err := Merge([]MergeInput{{"ab", ab}, {"c", c}})
	if err != nil {
		t.Fatal(err)
	}
	if len(abc.Sources) != 3 || abc.Cells[0].Generators != 3 || abc.Cells[0].Ops != 3000 {
		t.Errorf("sources %d, generators %d, ops %d", len(abc.Sources), abc.Cells[0].Generators, abc.Cells[0].Ops)
	}
}

// TestMergeKeepsProvenBreaks: a kept invariant (no rule to re-judge) is
// proven in the merge when an input's break was proven, and only then.
func TestMergeKeepsProvenBreaks(t *testing.T) {
	inv := func(holds, proven bool) *result.Cell {
		return &result.Cell{Invariants: []result.Invariant{{Name: "never two holders inside", Holds: holds, Proven: proven}}}
	}
	for _, tc := range []struct {
		name                string
		a, b                *result.Cell
		wantHolds, wantProv bool
	}{
		{"both hold", inv(true, false), inv(true, false), true, false},
		{"one proven break", inv(true, false), inv(false, true), false, true},
		{"an unproven break", inv(false, false), inv(true, false), false, false},
		{"proven and unproven breaks", inv(false, false), inv(false, true), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeInvariants([]*result.Cell{tc.a, tc.b}, []string{"a.json", "b.json"}, nil, nil)
			if len(got) != 1 || got[0].Holds != tc.wantHolds || got[0].Proven != tc.wantProv || got[0].Merged != result.Kept {
				t.Errorf("merged %+v, want holds %v proven %v", got, tc.wantHolds, tc.wantProv)
			}
		})
	}
}
