package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newPayCancel() }) }

// PayCancel places orders (created, then processing with their stock
// taken) and then races, on each one, the payment callback against the
// customer's cancellation. The seed's update_order_status writes whatever
// it is told: both moves apply, with both side effects — the money is
// captured and the stock returned — whichever status lands last. A share
// of the orders whose payment went through are then refunded (paid →
// refunded: a ledger refund of the captured amount, the units back in
// stock), so the refund path's side effects are judged too.
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
	// Refund is the share (0..1) of the orders whose payment was applied
	// that are refunded afterwards.
	Refund float64
}

func newPayCancel() *PayCancel {
	return &PayCancel{Orders: 200, Items: 4, Stock: 1000, Quantity: 1, Refund: 0.25}
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
	fs.Float64Var(&p.Refund, "refund", p.Refund, "share of the paid orders refunded afterwards (0..1)")
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
	case p.Refund < 0 || p.Refund > 1:
		return fmt.Errorf("--refund must be 0..1, got %v", p.Refund)
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
		"refund":   strconv.FormatFloat(p.Refund, 'g', -1, 64),
	}
}

// Steps of pay-cancel: placing the order (create and reserve), then the
// two racing moves, which every placed order goes through; then the
// refund of some paid orders (payCancelRefundStep).
var payCancelSteps = []string{"place", "pay", "cancel"}

// payCancelRefundStep is the refund's step, after payCancelSteps.
const payCancelRefundStep = "refund"

// payCancelCalls is the most order calls one order of pay-cancel makes:
// create, reserve, pay, cancel, refund.
const payCancelCalls = 5

// payCancelTally is one worker's client-side tally, on its own cache line.
type payCancelTally struct {
	orders, placed, noStock, paid, cancelled, refused, both int64
	refundsAsked, refunds, refundsRefused                   int64
	_                                                       [64]byte
}

// Run implements Scenario.
func (p *PayCancel) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	// The naive strategy takes its stock with the atomic lua deduction, so
	// that placing the orders is exact and the race below is the only bug.
	oopts := impl.OrderOptions{Keys: env.Keys, NaiveStock: impl.StockLua}
	orders, err := openOrders(env.Backend, strategy, oopts)
	if err != nil {
		return cell, err
	}
	items := orderItems(p.Items)
	if err := seedOrderStock(ctx, env.Admin, env.Keys, items, p.Stock); err != nil {
		return cell, err
	}
	conc := orderConcurrency(env)
	tallies := make([]payCancelTally, conc)
	notes := newOrderNotes(conc)
	settles := strategy == impl.OrderSafe
	requests, duration := orderRunSize(env, p.Orders)
	// What every call was told, for the order model: a log per worker,
	// at most five calls per order (create, reserve, pay, cancel, refund).
	var rec *history.Recorder
	hopts := env.Common.History
	histOps := p.Orders * payCancelCalls
	if duration == 0 && hopts.Records(histOps) {
		rec = history.New(history.Options{Clients: conc, PerClient: int(p.Orders/int64(conc)+1) * payCancelCalls})
	}
	classify := env.Backend.Classify

	stats, err := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Requests:    requests,
		Duration:    duration,
		Steps:       append(append([]string(nil), payCancelSteps...), payCancelRefundStep),
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		t := &tallies[w.ID]
		t.orders++
		f := newOpFailure(env.Backend.Classify, &notes[w.ID])
		ref := impl.OrderRef{Item: items[w.Seq%int64(len(items))], ID: "o-" + strconv.FormatInt(w.Seq, 10)}
		hl := rec.Log(w.ID)
		// record adds a call's entry to the history (when it tells
		// something).
		record := func(e history.Entry, ok bool) {
			if ok {
				hl.Add(e)
			}
		}
		t0 := time.Now()
		var c orderCall
		c.call = hl.Now()
		c.order, c.ok, c.err = orders.Create(ctx, impl.NewOrder{Item: ref.Item, ID: ref.ID, Quantity: p.Quantity, Amount: p.Quantity * orderUnitPrice})
		c.ret = hl.Now()
		if hl != nil {
			record(orderCreateEntry(w.Seq, -1, c, classify))
		}
		if err := c.err; err != nil {
			f.fail(err, ref, impl.MoveCreate)
			return f.end(ref, false, settles)
		}
		c = orderCall{call: hl.Now()}
		c.order, c.ok, c.err = orders.Transition(ctx, ref, impl.StatusProcessing)
		c.ret = hl.Now()
		if hl != nil {
			record(orderMoveEntry(w.Seq, -1, impl.StatusProcessing, c, classify))
		}
		err := c.err
		if errors.Is(err, impl.ErrOutOfStock) {
			t.noStock++
			return nil
		}
		if err != nil {
			f.fail(err, ref, impl.MoveReserve)
			return f.end(ref, false, settles)
		}
		w.Observe(0, time.Since(t0))
		t.placed++

		// The payment provider's callback and the customer's cancel
		// arrive together.
		moves := [2]impl.OrderStatus{impl.StatusPaid, impl.StatusCancelled}
		var took [2]time.Duration
		var applied [2]bool
		var errs [2]error
		var calls [2]orderCall
		start := make(chan struct{})
		var wg sync.WaitGroup
		first := w.Rand.IntN(2) // which goroutine the scheduler sees last varies
		refund := w.Rand.Float64() < p.Refund
		for k := range moves {
			i := (first + k) % 2
			to := moves[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				calls[i].call = hl.Now()
				s := time.Now()
				calls[i].order, applied[i], errs[i] = orders.Transition(ctx, ref, to)
				took[i] = time.Since(s)
				calls[i].ret = hl.Now()
			}()
		}
		close(start)
		wg.Wait()
		if hl != nil {
			for i, to := range moves {
				calls[i].ok, calls[i].err = applied[i], errs[i]
				record(orderMoveEntry(w.Seq, -1, to, calls[i], classify))
			}
		}
		for i, to := range moves {
			w.Observe(1+i, took[i])
			switch {
			case errors.Is(errs[i], impl.ErrIllegalTransition):
				t.refused++
			case errs[i] != nil:
				f.fail(errs[i], ref, impl.MoveTo(to))
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
		// A share of the orders whose payment went through are refunded.
		if applied[0] && refund && f.err == nil {
			t.refundsAsked++
			c = orderCall{call: hl.Now()}
			s := time.Now()
			c.order, c.ok, c.err = orders.Transition(ctx, ref, impl.StatusRefunded)
			w.Observe(3, time.Since(s))
			c.ret = hl.Now()
			if hl != nil {
				record(orderMoveEntry(w.Seq, -1, impl.StatusRefunded, c, classify))
			}
			ok, err := c.ok, c.err
			switch {
			case err == nil && ok:
				t.refunds++
			case errors.Is(err, impl.ErrIllegalTransition):
				t.refundsRefused++
			case err != nil:
				f.fail(err, ref, impl.MoveRefund)
			}
		}
		return f.end(ref, false, settles)
	})
	if err != nil {
		return cell, err
	}
	stats.Fill(&cell)
	cell.History = orderHistory(ctx, env, rec, oopts, duration, histOps)

	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var sum payCancelTally
	for _, t := range tallies {
		sum.orders += t.orders
		sum.placed += t.placed
		sum.noStock += t.noStock
		sum.paid += t.paid
		sum.cancelled += t.cancelled
		sum.refused += t.refused
		sum.both += t.both
		sum.refundsAsked += t.refundsAsked
		sum.refunds += t.refunds
		sum.refundsRefused += t.refundsRefused
	}
	snap, err := readOrderSnapshot(vctx, env.Admin, env.Keys, items)
	if err == nil {
		err = snap.lostData()
	}
	if err != nil {
		cell.Summary = fmt.Sprintf("%d orders, %d placed: %d pays, %d cancels and %d refunds answered applied; %s",
			sum.orders, sum.placed, sum.paid, sum.cancelled, sum.refunds, notJudged)
		return cell, JudgementError(fmt.Errorf("read back: %w", err))
	}
	st := settle(snap, notes, settles, stats)
	cell.Settled = st.ops
	p.figures(snap, sum, st, stats.ErrorCount()).judge(&cell)
	return cell, nil
}

// payCancelFigures are pay-cancel's figures, computed once from the
// server's state, the workers' answers and the settlement of their lost
// replies; the invariants, the figures and the summary are all written
// from them.
type payCancelFigures struct {
	// Answers: orders submitted and placed, refused for stock, pays and
	// cancels applied, losing moves refused, orders that took both moves,
	// refunds asked and applied.
	submitted, placed, noStock, paysApplied, cancelsApplied, refused, both int64
	refundsAsked, refundsApplied, refundsRefused                           int64
	// From the server: orders by status; processing orders whose calls
	// did not fail (unsettled) and whose calls failed (leftAside).
	orders, paid, completed, cancelled, refunded, unsettled, leftAside int64
	// Money per order: cancelled orders holding money, paid orders whose
	// ledger is not their amount, orders captured more than once,
	// refunded orders without exactly one refund of the captured amount,
	// orders not refunded that hold a refund.
	cancelledWithMoney, cancelledMoney, paidWrong, capturedTwice int64
	refundWrong, refundStray                                     int64
	// The ledger in total, what paid orders come to, and entries for
	// orders no hash holds.
	ledgerNet, ledgerCaptured, ledgerRefunded, ledgerExpected, strayLedger int64
	// Stock: initial, final, units held by processing and paid orders,
	// units of refunded orders; reservations of orders not left aside.
	initial, final, held, refundedUnits, reservationsLeft int64
	errors                                                int64
	lost                                                  settlement
}

// stockDiff is the stock beyond initial − held: units returned for orders
// that kept them (> 0) or never returned (< 0).
func (f payCancelFigures) stockDiff() int64 { return f.final - (f.initial - f.held) }

// The invariants' conditions, shared by the invariants and the summary.
func (f payCancelFigures) cancelledOK() bool { return f.cancelledWithMoney == 0 }
func (f payCancelFigures) stockOK() bool     { return f.stockDiff() == 0 }
func (f payCancelFigures) capturedOK() bool  { return f.paidWrong == 0 && f.capturedTwice == 0 }
func (f payCancelFigures) refundsOK() bool   { return f.refundWrong == 0 && f.refundStray == 0 }
func (f payCancelFigures) ledgerOK() bool {
	return f.ledgerNet == f.ledgerExpected && f.strayLedger == 0
}
func (f payCancelFigures) settledOK() bool { return f.unsettled == 0 && f.reservationsLeft == 0 }

// figures computes the figures from the server's state.
func (p *PayCancel) figures(snap *orderSnapshot, sum payCancelTally, st settlement, errs int64) payCancelFigures {
	count, units := snap.byStatus()
	f := payCancelFigures{
		submitted:      sum.orders,
		placed:         sum.placed,
		noStock:        sum.noStock,
		paysApplied:    sum.paid,
		cancelsApplied: sum.cancelled,
		refused:        sum.refused,
		both:           sum.both,
		refundsAsked:   sum.refundsAsked,
		refundsApplied: sum.refunds,
		refundsRefused: sum.refundsRefused,
		orders:         int64(len(snap.orders)),
		paid:           count[impl.StatusPaid],
		completed:      count[impl.StatusCompleted],
		cancelled:      count[impl.StatusCancelled],
		refunded:       count[impl.StatusRefunded],
		ledgerNet:      snap.ledgerNet,
		ledgerCaptured: snap.ledgerCaptured,
		ledgerRefunded: snap.ledgerRefunded,
		ledgerExpected: snap.capturedAmount(),
		strayLedger:    snap.strayLedger,
		initial:        p.Stock * int64(p.Items),
		final:          snap.totalStock(),
		held:           snap.heldUnits(),
		refundedUnits:  units[impl.StatusRefunded],
		errors:         errs,
		lost:           st,
	}
	for _, o := range snap.orders {
		m := snap.money[o.Ref()]
		switch {
		case o.Status == impl.StatusCancelled && m.net() != 0:
			f.cancelledWithMoney++
			f.cancelledMoney += m.net()
		case o.Status.Captured() && (m.net() != o.Amount || m.captures != 1):
			f.paidWrong++
		case o.Status == impl.StatusRefunded && (m.refunds != 1 || m.captures != 1 || m.refunded != m.captured || m.captured != o.Amount):
			f.refundWrong++
		}
		if o.Status != impl.StatusRefunded && m.refunds > 0 {
			f.refundStray++
		}
		if m.captures > 1 {
			f.capturedTwice++
		}
		if o.Status == impl.StatusProcessing {
			if _, touched := st.touched[o.Ref()]; touched {
				f.leftAside++
			} else {
				f.unsettled++
			}
		}
	}
	for ref := range snap.reservations {
		if _, touched := st.touched[ref]; !touched {
			f.reservationsLeft++
		}
	}
	return f
}

// judge writes the cell's figures, invariants and summary.
func (f payCancelFigures) judge(cell *result.Cell) {
	cell.Figures = map[string]float64{
		"orders":                float64(f.orders),
		"orders_submitted":      float64(f.submitted),
		"orders_placed":         float64(f.placed),
		"refused_no_stock":      float64(f.noStock),
		"orders_paid":           float64(f.paid),
		"orders_cancelled":      float64(f.cancelled),
		"orders_refunded":       float64(f.refunded),
		"orders_unsettled":      float64(f.unsettled),
		"orders_left_aside":     float64(f.leftAside),
		"pays_applied":          float64(f.paysApplied),
		"cancels_applied":       float64(f.cancelsApplied),
		"refunds_asked":         float64(f.refundsAsked),
		"refunds_applied":       float64(f.refundsApplied),
		"refunds_refused":       float64(f.refundsRefused),
		"moves_refused":         float64(f.refused),
		"both_applied":          float64(f.both),
		"cancelled_with_money":  float64(f.cancelledWithMoney),
		"cancelled_money":       float64(f.cancelledMoney),
		"paid_ledger_wrong":     float64(f.paidWrong),
		"captured_twice":        float64(f.capturedTwice),
		"refunded_ledger_wrong": float64(f.refundWrong),
		"refunds_not_refunded":  float64(f.refundStray),
		"ledger_net":            float64(f.ledgerNet),
		"ledger_captured":       float64(f.ledgerCaptured),
		"ledger_refunded":       float64(f.ledgerRefunded),
		"ledger_expected":       float64(f.ledgerExpected),
		"stock_initial":         float64(f.initial),
		"stock_final":           float64(f.final),
		"units_held":            float64(f.held),
		"units_refunded":        float64(f.refundedUnits),
		"units_returned_held":   float64(f.stockDiff()),
		"reservations_left":     float64(f.reservationsLeft),
		"errors":                float64(f.errors),
	}
	f.lost.figures(cell.Figures)
	stockDetail := fmt.Sprintf("stock ends at %d; the %d units processing and paid orders hold leave %d expected (cancelled and refunded orders' units back)",
		f.final, f.held, f.initial-f.held)
	switch d := f.stockDiff(); {
	case d > 0:
		stockDetail += fmt.Sprintf(": %d units returned for orders that kept them, or returned twice", d)
	case d < 0:
		stockDetail += fmt.Sprintf(": %d units of cancelled or refunded orders never came back", -d)
	}
	settledDetail := fmt.Sprintf("%d orders still processing, %d reservations left", f.unsettled, f.reservationsLeft)
	if f.leftAside > 0 {
		settledDetail += fmt.Sprintf(" (%d processing orders whose calls failed left aside)", f.leftAside)
	}
	cell.Invariants = []result.Invariant{
		Check("no cancelled order has money captured", f.cancelledOK(),
			"%d of %d cancelled orders hold %d cents in the ledger", f.cancelledWithMoney, f.cancelled, f.cancelledMoney),
		Check("no paid order has its stock returned", f.stockOK(), "%s", stockDetail),
		Check("every paid order captured exactly once", f.capturedOK(),
			"%d paid orders whose ledger is not one capture of their amount, %d orders captured more than once", f.paidWrong, f.capturedTwice),
		Check("one refund per refunded order, for the amount captured", f.refundsOK(),
			"%d of %d refunded orders do not hold exactly one capture and one refund of their amount; %d orders not refunded hold a refund",
			f.refundWrong, f.refunded, f.refundStray),
		Check("ledger == paid orders' amounts", f.ledgerOK(),
			"ledger nets %d cents (%d captured − %d refunded), paid orders come to %d (%d entries for unknown orders)",
			f.ledgerNet, f.ledgerCaptured, f.ledgerRefunded, f.ledgerExpected, f.strayLedger),
		Check("every order settled paid, cancelled or refunded", f.settledOK(), "%s", settledDetail),
	}
	cell.Summary = f.summary()
}

// summary is the cell's one line, written from the same figures as the
// invariants: every broken invariant shows in it, and it states no
// equality that does not hold.
func (f payCancelFigures) summary() string {
	var b strings.Builder
	if f.placed == f.submitted {
		fmt.Fprintf(&b, "%d orders, pay and cancel raced on each: ", f.placed)
	} else {
		fmt.Fprintf(&b, "%d orders, %d placed (%d refused for stock), pay and cancel raced on each placed: ", f.submitted, f.placed, f.noStock)
	}
	fmt.Fprintf(&b, "%d paid, %d cancelled, %d refunded, %d losing moves refused", f.paid+f.completed, f.cancelled, f.refunded, f.refused)
	if f.both > 0 {
		fmt.Fprintf(&b, "; %d orders took both moves", f.both)
	}
	if !f.cancelledOK() {
		fmt.Fprintf(&b, "; %d cancelled orders kept %d cents", f.cancelledWithMoney, f.cancelledMoney)
	}
	fmt.Fprintf(&b, "; stock %d %s %d - %d held", f.final, eqSign(f.stockOK()), f.initial, f.held)
	switch d := f.stockDiff(); {
	case d > 0:
		fmt.Fprintf(&b, " — %d units went back to stock for orders that kept them, or twice", d)
	case d < 0:
		fmt.Fprintf(&b, " — %d units of cancelled or refunded orders never went back", -d)
	}
	fmt.Fprintf(&b, "; ledger %d cents %s paid orders' %d", f.ledgerNet, eqSign(f.ledgerOK()), f.ledgerExpected)
	if f.strayLedger > 0 {
		fmt.Fprintf(&b, " (%d entries for unknown orders)", f.strayLedger)
	}
	if !f.capturedOK() {
		fmt.Fprintf(&b, "; %d paid orders not captured once, %d captured twice", f.paidWrong, f.capturedTwice)
	}
	if !f.refundsOK() {
		fmt.Fprintf(&b, "; %d refunded orders without one refund of their capture, %d refunds on orders not refunded", f.refundWrong, f.refundStray)
	}
	if !f.settledOK() {
		fmt.Fprintf(&b, "; %d orders still processing, %d reservations left", f.unsettled, f.reservationsLeft)
	}
	if line := f.lost.line(); line != "" {
		b.WriteString("; " + line)
	}
	return b.String()
}
