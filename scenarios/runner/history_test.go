package runner

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
	"github.com/paybench/paybench/scenarios/histcheck"
)

func TestJudgeHistory(t *testing.T) {
	hist := func(res string) *result.History {
		return &result.History{Model: "stock counter", Result: res, Witness: "buyers 17 and 42 were both told 7 remained", Reason: "not decided within 10s"}
	}
	for _, tc := range []struct {
		name    string
		verdict result.Verdict
		history *result.History
		want    result.Verdict
		says    string // in the summary or the reason
	}{
		{"no history", result.Pass, nil, result.Pass, ""},
		{"linearizable pass", result.Pass, hist(result.HistoryLinearizable), result.Pass, ""},
		{"illegal fails a pass", result.Pass, hist(result.HistoryNotLinearizable), result.Fail, "history not linearizable: buyers 17 and 42"},
		{"illegal is evidence of a reproduction", result.Reproduced, hist(result.HistoryNotLinearizable), result.Reproduced, "history not linearizable"},
		{"illegal reproduces what the invariants missed", result.NotReproduced, hist(result.HistoryNotLinearizable), result.Reproduced, "history not linearizable"},
		{"illegal keeps a fail", result.Fail, hist(result.HistoryNotLinearizable), result.Fail, "history not linearizable"},
		{"unknown never passes", result.Pass, hist(result.HistoryUnknown), result.Inconclusive, "linearizability is unknown: not decided within 10s"},
		{"unknown keeps a reproduction", result.Reproduced, hist(result.HistoryUnknown), result.Reproduced, "history not decided"},
		{"not checked changes nothing", result.Pass, hist(result.HistoryNotChecked), result.Pass, ""},
		{"an inconclusive cell stays so", result.Inconclusive, hist(result.HistoryNotLinearizable), result.Inconclusive, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := judgeHistory(result.Cell{Verdict: tc.verdict, Summary: "sold 100 units", History: tc.history})
			if c.Verdict != tc.want {
				t.Fatalf("verdict %s, want %s", c.Verdict, tc.want)
			}
			if !strings.Contains(c.Summary+"|"+c.Reason, tc.says) {
				t.Fatalf("summary %q reason %q do not say %q", c.Summary, c.Reason, tc.says)
			}
		})
	}
}

// TestLoadCellHistory: a stock.deduct load cell records and checks its
// history with --history on, sized by --requests, and stays MEASURED;
// in auto mode a load cell records none.
func TestLoadCellHistory(t *testing.T) {
	stock, err := scenarios.LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []histcheck.Mode{histcheck.ModeOn, histcheck.ModeAuto} {
		t.Run(string(mode), func(t *testing.T) {
			p := testPlan(t)
			p.Settings.Concurrency = 8
			p.Settings.History = histcheck.Options{Mode: mode}
			p.Loads = []LoadCells{{Operation: stock, Strategies: []string{impl.StockLua}, Shape: LoadShape{Requests: 300}}}
			doc, err := runPlan(t, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Cells) != 2 {
				t.Fatalf("%d cells, want 2", len(doc.Cells))
			}
			for _, c := range doc.Cells {
				if c.Verdict != result.Measured {
					t.Errorf("%s: %s (%s)", c.Key(), c.Verdict, c.Summary)
				}
				h := c.History
				switch {
				case mode == histcheck.ModeAuto && h != nil:
					t.Errorf("%s: auto recorded a load history %+v", c.Key(), *h)
				case mode == histcheck.ModeOn && (h == nil || h.Result != result.HistoryLinearizable || h.Ops != 300 || h.Model != "stock counter"):
					t.Errorf("%s: history %+v, want linearizable over 300 deductions", c.Key(), h)
				}
			}
		})
	}
}
