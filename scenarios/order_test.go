package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// wantVerdict fails t unless cell got want, showing the cell.
func wantVerdict(t *testing.T, cell result.Cell, want result.Verdict) {
	t.Helper()
	if cell.Verdict != want {
		t.Fatalf("verdict %s, want %s: %s\n%+v", cell.Verdict, want, cell.Summary, cell.Invariants)
	}
	t.Logf("%s: %s", cell.Verdict, cell.Summary)
}

// broken lists the names of the cell's broken invariants.
func broken(cell result.Cell) []string {
	var out []string
	for _, inv := range cell.Invariants {
		if !inv.Holds {
			out = append(out, inv.Name)
		}
	}
	return out
}

// wantOrderHistory fails t unless the cell's history agrees with its
// verdict — not linearizable, with a witness, exactly when it REPRODUCED —
// over one partition per order and at least minOps operations.
func wantOrderHistory(t *testing.T, cell result.Cell, verdict result.Verdict, orders, minOps int64) {
	t.Helper()
	want := result.HistoryLinearizable
	if verdict == result.Reproduced {
		want = result.HistoryNotLinearizable
	}
	h := cell.History
	if h == nil || h.Result != want || h.Model != orderModelName || int64(h.Partitions) != orders || h.Ops < minOps {
		t.Fatalf("history %+v, want %s over %d orders, at least %d operations", h, want, orders, minOps)
	}
	if want == result.HistoryNotLinearizable && (h.Witness == "" || !strings.HasPrefix(h.Partition, "order o-") || len(h.WitnessOps) == 0) {
		t.Fatalf("a violation without its witness: %+v", h)
	}
	t.Logf("history: %s %s", h.Result, h.Witness)
}

func TestDuplicateOrderVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy   string
			naiveStock string
			stock      int64
			want       result.Verdict
			breaks     []string
		}{
			{impl.OrderNaive, impl.StockLua, 1000, result.Reproduced, []string{"one stock deduction per order", "one confirmation per order"}},
			{impl.OrderNaive, impl.StockNaive, 1000, result.Reproduced, []string{"one confirmation per order"}},
			{impl.OrderSafe, "", 1000, result.Pass, nil},
			{impl.OrderSafe, "", 15, result.Pass, nil}, // stock runs out: refusals, still one deduction per order
		} {
			t.Run(backend+"/"+tc.strategy+"/"+tc.naiveStock, func(t *testing.T) {
				d := newDuplicateOrder()
				d.Orders, d.Copies, d.Items, d.Stock = 60, 4, 3, tc.stock
				if tc.naiveStock != "" {
					d.NaiveStock = tc.naiveStock
				}
				cell := runJudged(t, d, testEnvC(t, backend, 16), tc.strategy)
				wantVerdict(t, cell, tc.want)
				wantOrderHistory(t, cell, tc.want, 60, 480)
				for _, name := range tc.breaks {
					if !strings.Contains(strings.Join(broken(cell), "|"), name) {
						t.Errorf("invariant %q held: %+v", name, cell.Invariants)
					}
				}
				f := cell.Figures
				if f["orders"] != 60 || f["submissions"] != 240 {
					t.Errorf("orders %v, submissions %v; want 60 and 240", f["orders"], f["submissions"])
				}
				if tc.strategy == impl.OrderSafe {
					want := min(60, 3*tc.stock)
					if f["confirmed_new"] != 60 || f["reservations_applied"] != float64(want) || f["units_taken"] != float64(want) {
						t.Errorf("safe: confirmed %v, reserved %v, taken %v; want 60, %d, %d", f["confirmed_new"], f["reservations_applied"], f["units_taken"], want, want)
					}
				}
				if tc.strategy == impl.OrderNaive && tc.naiveStock == impl.StockLua && f["units_taken"] != 240 {
					t.Errorf("naive with atomic stock: %v units taken, want 240 (every copy)", f["units_taken"])
				}
				if cell.Steps["create"].Corrected.Count != 240 {
					t.Errorf("create step recorded %d times, want 240", cell.Steps["create"].Corrected.Count)
				}
			})
		}
	}
}

func TestPayCancelVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			want     result.Verdict
		}{
			{impl.OrderNaive, result.Reproduced},
			{impl.OrderSafe, result.Pass},
		} {
			t.Run(backend+"/"+tc.strategy, func(t *testing.T) {
				p := newPayCancel()
				p.Orders, p.Items = 80, 2
				cell := runJudged(t, p, testEnvC(t, backend, 16), tc.strategy)
				wantVerdict(t, cell, tc.want)
				wantOrderHistory(t, cell, tc.want, 80, 80*4)
				f := cell.Figures
				if f["orders"] != 80 || f["orders_paid"]+f["orders_cancelled"]+f["orders_refunded"] != 80 {
					t.Errorf("orders %v: %v paid + %v cancelled + %v refunded; want 80 settled", f["orders"], f["orders_paid"], f["orders_cancelled"], f["orders_refunded"])
				}
				if f["orders_refunded"] == 0 || f["refunds_applied"] != f["orders_refunded"] {
					t.Errorf("%v refunds applied, %v orders refunded; want some, equal", f["refunds_applied"], f["orders_refunded"])
				}
				switch tc.strategy {
				case impl.OrderSafe:
					if f["moves_refused"] != 80 || f["both_applied"] != 0 {
						t.Errorf("safe: %v moves refused, %v orders took both; want 80 and 0", f["moves_refused"], f["both_applied"])
					}
					if f["refunds_asked"] != f["refunds_applied"] || f["ledger_refunded"] != f["orders_refunded"]*orderUnitPrice {
						t.Errorf("safe: %v refunds asked, %v applied, ledger refunded %v cents", f["refunds_asked"], f["refunds_applied"], f["ledger_refunded"])
					}
				case impl.OrderNaive:
					if f["both_applied"] != 80 {
						t.Errorf("naive: %v orders took both moves, want 80", f["both_applied"])
					}
				}
				for _, step := range payCancelSteps {
					if cell.Steps[step].Corrected.Count != 80 {
						t.Errorf("step %s recorded %d times, want 80", step, cell.Steps[step].Corrected.Count)
					}
				}
			})
		}
	}
}

func TestCheckoutVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			abandon  float64
			want     result.Verdict
		}{
			{impl.OrderNaive, 0.2, result.Reproduced},
			{impl.OrderNaive, 0, result.Reproduced},
			{impl.OrderSafe, 0.2, result.Pass},
			{impl.OrderSafe, 0, result.Pass},
		} {
			t.Run(backend+"/"+tc.strategy, func(t *testing.T) {
				c := newCheckout()
				c.Stock, c.Buyers, c.Abandon = 30, 90, tc.abandon
				c.ReservationTTL = 200 * time.Millisecond
				c.LockPoll = 5 * time.Millisecond
				cell := runJudged(t, c, testEnvC(t, backend, 16), tc.strategy)
				wantVerdict(t, cell, tc.want)
				f := cell.Figures
				if tc.strategy == impl.OrderNaive && f["orders_completed"] <= 30 {
					t.Errorf("naive completed %v orders of 30 units; the ignored stock answer should complete more", f["orders_completed"])
				}
				if tc.strategy == impl.OrderSafe {
					if f["units_completed"] != f["units_deducted"] || f["stock_final"]+f["units_sold"] != 30 {
						t.Errorf("safe: completed %v, deducted %v, final %v, sold %v", f["units_completed"], f["units_deducted"], f["stock_final"], f["units_sold"])
					}
					if tc.abandon == 0 && f["orders_completed"] != 30 {
						t.Errorf("safe without abandons completed %v orders, want all 30 units sold", f["orders_completed"])
					}
				}
				wantSteps := []string{"create", "reserve", "pay", "complete"}
				if tc.strategy == impl.OrderNaive {
					wantSteps = append(wantSteps, "lock")
				}
				for _, step := range wantSteps {
					if cell.Steps[step].Corrected.Count == 0 {
						t.Errorf("step %s not recorded", step)
					}
				}
				if cell.Steps["create"].Corrected.Count != 90 {
					t.Errorf("create recorded %d times, want 90", cell.Steps["create"].Corrected.Count)
				}
			})
		}
	}
}

// TestOrderScenariosDuration checks that a duration drives the runs
// instead of the count, and that the verdicts hold then too.
func TestOrderScenariosDuration(t *testing.T) {
	for _, tc := range []struct {
		s        Scenario
		strategy string
		want     result.Verdict
	}{
		{newDuplicateOrder(), impl.OrderSafe, result.Pass},
		{newPayCancel(), impl.OrderNaive, result.Reproduced},
		{newCheckout(), impl.OrderSafe, result.Pass},
	} {
		t.Run(tc.s.Name(), func(t *testing.T) {
			env := testEnvC(t, impl.Rueidis, 8)
			env.Common.Duration = 150 * time.Millisecond
			if c, ok := tc.s.(*Checkout); ok {
				c.ReservationTTL = 50 * time.Millisecond
			}
			cell := runJudged(t, tc.s, env, tc.strategy)
			wantVerdict(t, cell, tc.want)
			// A duration-bound run's measured window is the duration
			// exactly, however slow the machine (the engine's clock, not
			// this test's).
			if cell.ElapsedSec != env.Common.Duration.Seconds() {
				t.Errorf("measured %gs for a 150ms duration", cell.ElapsedSec)
			}
		})
	}
}

func TestOrderScenariosValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Scenario
		edit func(s Scenario)
	}{
		{"dup no orders", newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).Orders = 0 }},
		{"dup no copies", newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).Copies = 0 }},
		{"dup no items", newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).Items = 0 }},
		{"dup negative stock", newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).Stock = -1 }},
		{"dup zero quantity", newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).Quantity = 0 }},
		{"dup sharded stock", newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).NaiveStock = impl.StockSharded }},
		{"dup unknown stock", newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).NaiveStock = "nope" }},
		{"pay no orders", newPayCancel(), func(s Scenario) { s.(*PayCancel).Orders = 0 }},
		{"pay no items", newPayCancel(), func(s Scenario) { s.(*PayCancel).Items = 0 }},
		{"pay zero quantity", newPayCancel(), func(s Scenario) { s.(*PayCancel).Quantity = 0 }},
		{"checkout no buyers", newCheckout(), func(s Scenario) { s.(*Checkout).Buyers = 0 }},
		{"checkout abandon > 1", newCheckout(), func(s Scenario) { s.(*Checkout).Abandon = 1.5 }},
		{"checkout zero ttl", newCheckout(), func(s Scenario) { s.(*Checkout).ReservationTTL = 0 }},
		{"checkout zero poll", newCheckout(), func(s Scenario) { s.(*Checkout).LockPoll = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.s.Validate(); err != nil {
				t.Fatalf("defaults rejected: %v", err)
			}
			tc.edit(tc.s)
			if err := tc.s.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestOrderOperations(t *testing.T) {
	for _, name := range []string{"order.create", "order.get", "order.pay"} {
		op, err := LookupOperation(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, backend := range impl.Backends() {
			for _, strategy := range op.Strategies {
				t.Run(name+"/"+backend+"/"+strategy, func(t *testing.T) {
					env := testEnvC(t, backend, 4)
					lenv := &LoadEnv{
						Backend: env.Backend, Admin: env.Admin, Open: env.Open, Keys: env.Keys,
						KeyCount: 3,
						Pick:     func(w *bench.Worker) int { return int(w.Seq % 3) },
					}
					ctx := t.Context()
					load, err := op.Setup(ctx, lenv, strategy)
					if err != nil {
						t.Fatal(err)
					}
					stats, err := bench.Run(ctx, bench.Config{Concurrency: 4, Requests: 60}, load.Op)
					if err != nil {
						t.Fatal(err)
					}
					if stats.Ops != 60 || stats.ErrorCount() != 0 {
						t.Fatalf("%s: %d errors: %v", stats, stats.ErrorCount(), stats.Errors)
					}
					snap, err := readOrderSnapshot(ctx, env.Admin, env.Keys, orderItems(3))
					if err != nil {
						t.Fatal(err)
					}
					count, _ := snap.byStatus()
					switch name {
					case "order.create":
						if count[impl.StatusCreated] != 60 {
							t.Errorf("%d created orders, want 60", count[impl.StatusCreated])
						}
					case "order.get":
						if len(snap.orders) != 3 {
							t.Errorf("%d orders, want the 3 seeded", len(snap.orders))
						}
					case "order.pay":
						if count[impl.StatusPaid] != 60 || snap.ledgerNet != 60*orderUnitPrice {
							t.Errorf("%d paid orders, ledger %d; want 60 and %d", count[impl.StatusPaid], snap.ledgerNet, 60*orderUnitPrice)
						}
					}
				})
			}
		}
	}
}

// TestPayCancelRefunds runs the refund path with no, some and every paid
// order refunded: safe PASSes with one refund of the captured amount per
// refunded order and their units back in stock; naive, whose pay and
// cancel both apply, breaks as it does without refunds — and, refunding
// every order, returns each order's units twice (cancel and refund).
func TestPayCancelRefunds(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			refund   float64
			want     result.Verdict
			breaks   []string
		}{
			{impl.OrderSafe, 0, result.Pass, nil},
			{impl.OrderSafe, 0.5, result.Pass, nil},
			{impl.OrderSafe, 1, result.Pass, nil},
			{impl.OrderNaive, 0.5, result.Reproduced, []string{"no cancelled order has money captured", "no paid order has its stock returned", "ledger == paid orders' amounts"}},
			{impl.OrderNaive, 1, result.Reproduced, []string{"no paid order has its stock returned"}},
		} {
			t.Run(fmt.Sprintf("%s/%s/%v", backend, tc.strategy, tc.refund), func(t *testing.T) {
				p := newPayCancel()
				p.Orders, p.Items, p.Refund = 60, 2, tc.refund
				cell := runJudged(t, p, testEnvC(t, backend, 8), tc.strategy)
				wantVerdict(t, cell, tc.want)
				if got := broken(cell); !slices.Equal(got, tc.breaks) {
					t.Errorf("broken %q, want %q", got, tc.breaks)
				}
				f := cell.Figures
				if f["refunds_applied"] != f["orders_refunded"] || f["ledger_refunded"] != f["orders_refunded"]*orderUnitPrice {
					t.Errorf("%v refunds applied, %v orders refunded, %v cents refunded", f["refunds_applied"], f["orders_refunded"], f["ledger_refunded"])
				}
				switch {
				case tc.refund == 0 && f["orders_refunded"] != 0:
					t.Errorf("%v orders refunded with --refund 0", f["orders_refunded"])
				case tc.refund == 1 && f["orders_refunded"] != f["pays_applied"]:
					t.Errorf("%v orders refunded of %v paid with --refund 1", f["orders_refunded"], f["pays_applied"])
				case tc.refund == 1 && tc.strategy == impl.OrderNaive && f["units_returned_held"] != 60:
					t.Errorf("naive refunding every order: %v units returned beyond the design, want 60 (each order's twice)", f["units_returned_held"])
				}
				if tc.strategy == impl.OrderSafe && f["stock_final"] != f["stock_initial"]-f["orders_paid"] {
					t.Errorf("safe: stock %v, want %v − %v paid (refunded units back)", f["stock_final"], f["stock_initial"], f["orders_paid"])
				}
			})
		}
	}
}
