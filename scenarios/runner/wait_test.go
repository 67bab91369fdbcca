package runner

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/reports/result"
)

// TestJudgeFailoverWaitConfirmed: a cell under a failover that fired says
// how many of its lost writes WAIT had confirmed, when it sent WAIT.
func TestJudgeFailoverWaitConfirmed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		figures map[string]float64
		from    result.Verdict // the cell's verdict before (PASS when empty)
		verdict result.Verdict
		want    string
		absent  string
	}{
		{name: "lost, WAIT confirmed none", figures: map[string]float64{"purchases_ok_not_recorded": 3, "lost_writes_wait_confirmed": 0},
			verdict: result.Inconclusive, want: "lost 3 writes the client had been told succeeded, 0 of them confirmed by WAIT"},
		{name: "lost, no WAIT", figures: map[string]float64{"purchases_ok_not_recorded": 3},
			verdict: result.Inconclusive, want: "lost 3 writes", absent: "WAIT"},
		{name: "none lost", figures: map[string]float64{"purchases_ok_not_recorded": 0, "lost_writes_wait_confirmed": 0},
			verdict: result.Pass, want: "acknowledged writes lost in the failover: 0", absent: "confirmed by WAIT"},
		{name: "not measured, PASS", verdict: result.Pass, want: "not measured by this scenario"},
		{name: "not measured, FAIL", from: result.Fail, verdict: result.Inconclusive, want: "may be the failover's"},
		{name: "not measured, REPRODUCED", from: result.Reproduced, verdict: result.Inconclusive, want: "may be the failover's"},
		{name: "not measured, NOT-REPRODUCED", from: result.NotReproduced, verdict: result.NotReproduced, want: "not measured by this scenario"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from
			if from == "" {
				from = result.Pass
			}
			c := result.Cell{Verdict: from, Summary: "sold", Figures: tc.figures,
				Faults: []result.Fault{{Kind: faults.Failover, Count: 1}}}
			got := judgeFailover(c)
			text := got.Reason + " | " + got.Summary
			if got.Verdict != tc.verdict || !strings.Contains(text, tc.want) || (tc.absent != "" && strings.Contains(text, tc.absent)) {
				t.Fatalf("verdict %s, %q; want %s with %q and without %q", got.Verdict, text, tc.verdict, tc.want, tc.absent)
			}
		})
	}
}
