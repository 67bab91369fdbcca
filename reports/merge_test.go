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
