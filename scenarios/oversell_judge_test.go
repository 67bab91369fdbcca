package scenarios

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// TestOversellJudgeResends judges hand-made sales: ten purchases answered
// OK and recorded, one lost reply not recorded, and a stock that fell by
// twice units more than the records. Under a client that re-sends writes,
// lua's extra units are proven double deductions (FAIL, counted, lost
// reply settled); idempotent cannot have them, so they stay unexplained.
func TestOversellJudgeResends(t *testing.T) {
	const retries = "go-redis retries=library (3)"
	for _, tc := range []struct {
		name        string
		strategy    string
		retries     string
		twice       int64
		want        result.Verdict
		wantSettled int64
		wantText    string
	}{
		{"lua, re-sent", impl.StockLua, retries, 2, result.Fail, 1,
			"2 units deducted twice: the client re-sent purchases whose replies were lost (" + retries + ")"},
		{"lua, nothing re-sent", impl.StockLua, retries, 0, result.Pass, 1, "sold 10 units of 100"},
		{"lua, no client retries", impl.StockLua, "", 0, result.Pass, 1, "sold 10 units of 100"},
		{"idempotent, re-sent", impl.StockIdempotent, retries, 0, result.Pass, 1, "sold 10 units of 100"},
		{"lua, units gone, no client retries", impl.StockLua, "", 2, result.Fail, 0, "something else changed the stock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOversell()
			j := oversellJudgement{o: o, strategy: tc.strategy, sampled: newStockSampler(o.Stock, 1), retries: tc.retries}
			j.recorded = map[int64]int64{}
			for b := int64(0); b < 10; b++ {
				j.told = append(j.told, purchaseNote{buyer: b, qty: 1})
				j.recorded[b] = 1
			}
			j.lost = []purchaseNote{{buyer: 10, qty: 1}}
			j.bought, j.clientUnits, j.records, j.sold = 10, 10, 10, 10
			j.minReply, j.minRefusedQty = o.Stock, -1
			j.final = o.Stock - 10 - tc.twice
			j.finalVals = []int64{j.final}
			cell := &result.Cell{Expect: result.Hold}
			j.judge(cell)
			cell.Judge()
			if cell.Verdict != tc.want || cell.Settled != tc.wantSettled || !strings.Contains(cell.Summary, tc.wantText) {
				t.Errorf("%s, %d settled, %q; want %s, %d settled, containing %q",
					cell.Verdict, cell.Settled, cell.Summary, tc.want, tc.wantSettled, tc.wantText)
			}
			if tc.retries != "" && cell.Figures["units_deducted_twice"] != float64(tc.twice) {
				t.Errorf("units_deducted_twice %v, want %d", cell.Figures["units_deducted_twice"], tc.twice)
			}
		})
	}
}
