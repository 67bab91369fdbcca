package reports

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/reports/result"
)

// TestMergeHistories merges the histories of two generators' parts of one
// cell: linearizability is local, so one part's violation is the whole's,
// and an undecided or missing part never lets the whole read as checked.
func TestMergeHistories(t *testing.T) {
	lin := &result.History{Model: "stock counter", Result: result.HistoryLinearizable, Ops: 10, Partitions: 2, CheckSec: 0.5}
	bad := &result.History{Model: "stock counter", Result: result.HistoryNotLinearizable, Ops: 7, Partitions: 1, CheckSec: 0.2,
		Partition: "item 3", Witness: "buyers 1 and 2 were both told 7 remained", WitnessSize: 4, Visualization: "x.html"}
	unk := &result.History{Model: "stock counter", Result: result.HistoryUnknown, Reason: "not decided within 10s", Ops: 5, UnknownOutcomes: 2, Partitions: 1}
	skip := &result.History{Model: "stock counter", Result: result.HistoryNotChecked, Reason: "over the bound"}
	for _, tc := range []struct {
		name         string
		a, b         *result.History
		expect       result.Expectation
		want         string // merged history result; "" for none
		verdict      result.Verdict
		reasonOrWhat string
	}{
		{"none", nil, nil, result.Hold, "", result.Pass, ""},
		{"both linearizable", lin, lin, result.Hold, result.HistoryLinearizable, result.Pass, ""},
		{"one violation fails a PASS", lin, bad, result.Hold, result.HistoryNotLinearizable, result.Fail, "both told 7"},
		{"one violation reproduces", bad, lin, result.Break, result.HistoryNotLinearizable, result.Reproduced, "both told 7"},
		{"undecided part never passes", lin, unk, result.Hold, result.HistoryUnknown, result.Inconclusive, "not decided within 10s"},
		{"violation beats undecided", unk, bad, result.Hold, result.HistoryNotLinearizable, result.Fail, "item 3 (b.json)"},
		{"one generator without history", lin, nil, result.Hold, result.HistoryNotChecked, result.Pass, "b.json"},
		{"a part not checked", skip, lin, result.Hold, result.HistoryNotChecked, result.Pass, "over the bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &result.Cell{Scenario: "oversell", Backend: "goredis", Strategy: "lua", Expect: tc.expect, Verdict: result.Pass, Ops: 1, History: tc.a}
			b := &result.Cell{Scenario: "oversell", Backend: "goredis", Strategy: "lua", Expect: tc.expect, Verdict: result.Pass, Ops: 1, History: tc.b}
			out, _, err := mergeCells([]*result.Cell{a, b}, []string{"a.json", "b.json"})
			if err != nil {
				t.Fatal(err)
			}
			h := out.History
			if tc.want == "" {
				if h != nil {
					t.Fatalf("history %+v, want none", h)
				}
				return
			}
			if h == nil || h.Result != tc.want {
				t.Fatalf("history %+v, want result %s", h, tc.want)
			}
			if out.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s (reason %q)", out.Verdict, tc.verdict, out.Reason)
			}
			all := strings.Join([]string{h.Reason, h.Partition, h.Witness, out.Reason, out.Summary}, " | ")
			if !strings.Contains(all, tc.reasonOrWhat) {
				t.Errorf("%q does not say %q", all, tc.reasonOrWhat)
			}
			var ops int64
			for _, x := range []*result.History{tc.a, tc.b} {
				if x != nil {
					ops += x.Ops
				}
			}
			if h.Ops != ops || h.Visualization != "" {
				t.Errorf("ops %d, want %d; visualization %q, want none (it lies next to another report)", h.Ops, ops, h.Visualization)
			}
		})
	}
}

// TestMergeCarriesFaultsSettledAndClusterCounts checks what a merged cell
// keeps beside its figures: each generator's faults on the merged clock
// and marked with their input, settled failures summed, keys per master
// summed (generators own disjoint keys) and commands per master the
// largest count (each generator counted every client's commands).
func TestMergeCarriesFaultsSettledAndClusterCounts(t *testing.T) {
	a := &result.Cell{Operation: "stock.deduct", Backend: "rueidis", Strategy: "lua", Ops: 10, SeriesStart: 1.0, Settled: 3,
		Faults:          []result.Fault{{Spec: "pause:1s@2s", Kind: "pause", Start: 3.0, End: 4.0, Count: 1}},
		ClusterKeys:     map[string]int64{"n1": 5, "n2": 1},
		ClusterCommands: map[string]int64{"n1": 100, "n2": 40}}
	b := &result.Cell{Operation: "stock.deduct", Backend: "rueidis", Strategy: "lua", Ops: 10, SeriesStart: 1.5, Settled: 4,
		Faults:          []result.Fault{{Spec: "pause:1s@2s", Kind: "pause", Start: 3.5, End: 4.5, Count: 1}, {Spec: "reset@9s", Kind: "reset"}},
		ClusterKeys:     map[string]int64{"n1": 2, "n3": 7},
		ClusterCommands: map[string]int64{"n1": 90, "n3": 60}}
	out, _, err := mergeCells([]*result.Cell{a, b}, []string{"a.json", "b.json"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Settled != 7 || out.SeriesStart != 1.0 {
		t.Errorf("settled %d, series start %v; want 7 and the first input's 1.0", out.Settled, out.SeriesStart)
	}
	want := []result.Fault{
		{Spec: "pause:1s@2s", Kind: "pause", Start: 3.0, End: 4.0, Count: 1, From: "a.json"},
		{Spec: "pause:1s@2s", Kind: "pause", Start: 3.0, End: 4.0, Count: 1, From: "b.json"},
		{Spec: "reset@9s", Kind: "reset", From: "b.json"}, // never fired: no time to move
	}
	if len(out.Faults) != len(want) {
		t.Fatalf("faults %+v, want %+v", out.Faults, want)
	}
	for i := range want {
		if out.Faults[i] != want[i] {
			t.Errorf("fault %d: %+v, want %+v", i, out.Faults[i], want[i])
		}
	}
	if k := out.ClusterKeys; k["n1"] != 7 || k["n2"] != 1 || k["n3"] != 7 {
		t.Errorf("cluster keys %v", k)
	}
	if c := out.ClusterCommands; c["n1"] != 100 || c["n2"] != 40 || c["n3"] != 60 {
		t.Errorf("cluster commands %v", c)
	}
	if a.ClusterCommands["n1"] != 100 || b.ClusterKeys["n1"] != 2 {
		t.Error("merging changed an input's maps")
	}
}
