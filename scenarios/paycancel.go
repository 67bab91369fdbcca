package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newPayCancel() }) }

// PayCancel places orders (created, then processing with their stock
// taken) and then races, on each one, the payment callback against the
// customer's cancellation. The seed's update_order_status writes whatever
// it is told: both moves apply, with both side effects — the money is
// captured and the stock returned — whichever status lands last.
type PayCancel struct {
	// Orders is the number of orders (ignored when a duration drives the
	// run).
	Orders int64
	// Items is the number of items the orders spread over.
	Items int
	// Stock is each item's stock at the start.
	Stock int64
	// Quantity is the units each order takes.
	Quantity int64
}

func newPayCancel() *PayCancel {
	return &PayCancel{Orders: 200, Items: 4, Stock: 1000, Quantity: 1}
}

// Name implements Scenario.
func (p *PayCancel) Name() string { return "pay-cancel" }

// Description implements Scenario.
func (p *PayCancel) Description() string {
	return "pay and cancel race on each order; the seed's unconditional HSET applies both, money and stock disagree"
}

// Strategies implements Scenario.
func (p *PayCancel) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.OrderNaive, Expect: result.Break, Note: "the seed's update_order_status (HSET), side effects after it"},
		{Name: impl.OrderSafe, Expect: result.Hold, Note: "compare-and-set script, side effects in the same script"},
	}
}

// Flags implements Scenario.
func (p *PayCancel) Flags(fs *pflag.FlagSet) {
	fs.Int64Var(&p.Orders, "orders", p.Orders, "orders placed, each with a pay and a cancel racing")
	fs.IntVar(&p.Items, "items", p.Items, "items the orders spread over")
	fs.Int64Var(&p.Stock, "stock", p.Stock, "units of each item at the start")
	fs.Int64Var(&p.Quantity, "quantity", p.Quantity, "units per order")
}

// Validate implements Scenario.
func (p *PayCancel) Validate() error {
	switch {
	case p.Orders <= 0:
		return fmt.Errorf("--orders must be > 0, got %d", p.Orders)
	case p.Items < 1 || p.Items > 1024:
		return fmt.Errorf("--items must be 1..1024, got %d", p.Items)
	case p.Stock < 0:
		return fmt.Errorf("--stock must be >= 0, got %d", p.Stock)
	}
	if err := impl.ValidateQuantity(p.Quantity); err != nil {
		return fmt.Errorf("--quantity: %w", err)
	}
	return nil
}

// Params implements Scenario.
func (p *PayCancel) Params() map[string]string {
	return map[string]string{
		"orders":   strconv.FormatInt(p.Orders, 10),
		"items":    strconv.Itoa(p.Items),
		"stock":    strconv.FormatInt(p.Stock, 10),
		"quantity": strconv.FormatInt(p.Quantity, 10),
	}
}

// Steps of pay-cancel: placing the order (create and reserve), then the
// two racing moves.
var payCancelSteps = []string{"place", "pay", "cancel"}

// payCancelTally is one worker's client-side tally, on its own cache line.
type payCancelTally struct {
	placed, noStock, paid, cancelled, refused, both int64
	_                                               [64]byte
}

// Run implements Scenario.
func (p *PayCancel) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	// The naive strategy takes its stock with the atomic lua deduction, so
	// that placing the orders is exact and the race below is the only bug.
	orders, err := openOrders(env.Backend, strategy, impl.OrderOptions{Keys: env.Keys, NaiveStock: impl.StockLua})
	if err != nil {
		return cell, err
	}
	items := orderItems(p.Items)
	if err := seedOrderStock(ctx, env.Admin, env.Keys, items, p.Stock); err != nil {
		return cell, err
	}
	conc := orderConcurrency(env)
	tallies := make([]payCancelTally, conc)
	requests, duration := orderRunSize(env, p.Orders)

	stats, err := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Requests:    requests,
		Duration:    duration,
		Steps:       payCancelSteps,
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		t := &tallies[w.ID]
		ref := impl.OrderRef{Item: items[w.Seq%int64(len(items))], ID: "o-" + strconv.FormatInt(w.Seq, 10)}
		t0 := time.Now()
		if _, _, err := orders.Create(ctx, impl.NewOrder{Item: ref.Item, ID: ref.ID, Quantity: p.Quantity, Amount: p.Quantity * orderUnitPrice}); err != nil {
			return err
		}
		_, _, err := orders.Transition(ctx, ref, impl.StatusProcessing)
		if errors.Is(err, impl.ErrOutOfStock) {
			t.noStock++
			return nil
		}
		if err != nil {
			return err
		}
		w.Observe(0, time.Since(t0))
		t.placed++

		// The payment provider's callback and the customer's cancel
		// arrive together.
		moves := [2]impl.OrderStatus{impl.StatusPaid, impl.StatusCancelled}
		var took [2]time.Duration
		var applied [2]bool
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		first := w.Rand.IntN(2) // which goroutine the scheduler sees last varies
		for k := range moves {
			i := (first + k) % 2
			to := moves[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s := time.Now()
				_, applied[i], errs[i] = orders.Transition(ctx, ref, to)
				took[i] = time.Since(s)
			}()
		}
		close(start)
		wg.Wait()
		for i := range moves {
			w.Observe(1+i, took[i])
			if errors.Is(errs[i], impl.ErrIllegalTransition) {
				t.refused++
				errs[i] = nil
			}
		}
		if applied[0] {
			t.paid++
		}
		if applied[1] {
			t.cancelled++
		}
		if applied[0] && applied[1] {
			t.both++
		}
		return errors.Join(errs[0], errs[1])
	})
	if err != nil {
		return cell, err
	}
	stats.Fill(&cell)

	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	snap, err := readOrderSnapshot(vctx, env.Admin, env.Keys, items)
	if err != nil {
		return cell, err
	}
	var sum payCancelTally
	for _, t := range tallies {
		sum.placed += t.placed
		sum.noStock += t.noStock
		sum.paid += t.paid
		sum.cancelled += t.cancelled
		sum.refused += t.refused
		sum.both += t.both
	}
	p.judge(&cell, snap, sum, stats.ErrorCount())
	return cell, nil
}

// judge reads the verdict's figures from the server's state.
func (p *PayCancel) judge(cell *result.Cell, snap *orderSnapshot, sum payCancelTally, errs int64) {
	initial := p.Stock * int64(p.Items)
	final := snap.totalStock()
	held := snap.heldUnits()
	count, _ := snap.byStatus()
	// Units back in stock although the orders that took them still hold
	// them (paid with the stock returned).
	returnedForHeld := final - (initial - held)

	var cancelledWithMoney, cancelledMoney, paidWrong, capturedTwice int64
	for _, o := range snap.orders {
		m := snap.money[o.Ref()]
		switch {
		case o.Status == impl.StatusCancelled && m.net() != 0:
			cancelledWithMoney++
			cancelledMoney += m.net()
		case o.Status == impl.StatusPaid && m.net() != o.Amount:
			paidWrong++
		}
		if m.captures > 1 {
			capturedTwice++
		}
	}
	unsettled := count[impl.StatusProcessing]
	wantLedger := snap.capturedAmount()
	cell.Figures = map[string]float64{
		"orders":               float64(len(snap.orders)),
		"orders_placed":        float64(sum.placed),
		"refused_no_stock":     float64(sum.noStock),
		"orders_paid":          float64(count[impl.StatusPaid]),
		"orders_cancelled":     float64(count[impl.StatusCancelled]),
		"orders_unsettled":     float64(unsettled),
		"pays_applied":         float64(sum.paid),
		"cancels_applied":      float64(sum.cancelled),
		"moves_refused":        float64(sum.refused),
		"both_applied":         float64(sum.both),
		"cancelled_with_money": float64(cancelledWithMoney),
		"cancelled_money":      float64(cancelledMoney),
		"paid_ledger_wrong":    float64(paidWrong),
		"captured_twice":       float64(capturedTwice),
		"ledger_net":           float64(snap.ledgerNet),
		"ledger_expected":      float64(wantLedger),
		"stock_initial":        float64(initial),
		"stock_final":          float64(final),
		"units_held":           float64(held),
		"units_returned_held":  float64(returnedForHeld),
		"reservations_left":    float64(len(snap.reservations)),
		"errors":               float64(errs),
	}
	cell.Invariants = []result.Invariant{
		Check("no cancelled order has money captured", cancelledWithMoney == 0,
			"%d of %d cancelled orders hold %d cents in the ledger", cancelledWithMoney, count[impl.StatusCancelled], cancelledMoney),
		Check("no paid order has its stock returned", returnedForHeld == 0,
			"stock ends at %d; the %d units paid orders hold leave %d expected (%d units returned for orders that kept them)",
			final, held, initial-held, returnedForHeld),
		Check("every paid order captured exactly once", paidWrong == 0 && capturedTwice == 0,
			"%d paid orders whose ledger is not their amount, %d orders captured more than once", paidWrong, capturedTwice),
		Check("ledger == paid orders' amounts", snap.ledgerNet == wantLedger && snap.strayLedger == 0,
			"ledger nets %d cents, paid orders come to %d (%d entries for unknown orders)", snap.ledgerNet, wantLedger, snap.strayLedger),
		Check("every order settled paid or cancelled", unsettled == 0 && len(snap.reservations) == 0,
			"%d orders still processing, %d reservations left", unsettled, len(snap.reservations)),
	}
	if cancelledWithMoney > 0 || returnedForHeld != 0 {
		cell.Summary = fmt.Sprintf("%d orders, pay and cancel raced on each: %d ended paid, %d cancelled; %d cancelled orders kept %d cents, %d units went back to stock for paid orders; %d orders took both moves",
			len(snap.orders), count[impl.StatusPaid], count[impl.StatusCancelled], cancelledWithMoney, cancelledMoney, returnedForHeld, sum.both)
		return
	}
	cell.Summary = fmt.Sprintf("%d orders, pay and cancel raced on each: %d paid, %d cancelled, %d losing moves refused; ledger %d cents == paid orders, stock %d == %d - %d held",
		len(snap.orders), count[impl.StatusPaid], count[impl.StatusCancelled], sum.refused, snap.ledgerNet, final, initial, held)
}
