package runner

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/reports/result"
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
