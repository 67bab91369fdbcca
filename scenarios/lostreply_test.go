package scenarios

import (
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// TestLostReply runs a bounded lost-reply sale on both backends, with the
// scenario's own connection kills and no client retries: idempotent and
// lua must hold (nothing applied twice, every unit recorded), and every
// figure must agree with the counts it is made of.
func TestLostReply(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			want     []result.Verdict
		}{
			{impl.StockIdempotent, []result.Verdict{result.Pass}},
			{impl.StockLua, []result.Verdict{result.Pass}},
			{impl.StockNaive, []result.Verdict{result.Reproduced, result.NotReproduced}},
		} {
			t.Run(backend+"/"+tc.strategy, func(t *testing.T) {
				l := newLostReply()
				l.Purchases, l.KillEvery = 3000, 20*time.Millisecond
				if err := l.Validate(); err != nil {
					t.Fatal(err)
				}
				cell := runJudged(t, l, testEnv(t, backend), tc.strategy)
				f := cell.Figures
				t.Logf("%s: %s", cell.Verdict, cell.Summary)
				ok := false
				for _, v := range tc.want {
					ok = ok || cell.Verdict == v
				}
				if !ok {
					t.Errorf("verdict %s, want one of %v: %s %+v", cell.Verdict, tc.want, cell.Summary, cell.Invariants)
				}
				if f["lost_applied"] > f["lost_replies"] || f["purchases_ok"]+f["lost_replies"] > float64(l.Purchases) {
					t.Errorf("figures do not add up: %v", f)
				}
				if tc.strategy != impl.StockNaive && f["units_deducted"] != f["units_recorded"] {
					t.Errorf("%v units deducted, %v recorded", f["units_deducted"], f["units_recorded"])
				}
			})
		}
	}
}

func TestLostReplyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(l *LostReply)
	}{
		{"no purchases", func(l *LostReply) { l.Purchases = 0 }},
		{"too many purchases", func(l *LostReply) { l.Purchases = maxLostReplyPurchases + 1 }},
		{"negative period", func(l *LostReply) { l.KillEvery = -time.Second }},
		{"too short a period", func(l *LostReply) { l.KillEvery = time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLostReply()
			tc.edit(l)
			if err := l.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
