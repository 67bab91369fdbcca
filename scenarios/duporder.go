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

func init() { Register(func() Scenario { return newDuplicateOrder() }) }

// DuplicateOrder submits every order several times at once — a client
// retrying after a time-out, a double click — each submission creating the
// order and reserving its stock. The seed's add_order (HSET) has no notion
// of "already exists": every copy answers "new order" and takes the stock
// again.
type DuplicateOrder struct {
	// Orders is the number of distinct orders (ignored when a duration
	// drives the run).
	Orders int64
	// Copies is how many times each order is submitted, concurrently.
	Copies int
	// Items is the number of items the orders spread over.
	Items int
	// Stock is each item's stock at the start.
	Stock int64
	// Quantity is the units each order takes.
	Quantity int64
	// NaiveStock is the stock strategy the naive order code deducts with.
	NaiveStock string
}

func newDuplicateOrder() *DuplicateOrder {
	return &DuplicateOrder{Orders: 200, Copies: 4, Items: 4, Stock: 1000, Quantity: 1, NaiveStock: impl.StockLua}
}

// Name implements Scenario.
func (d *DuplicateOrder) Name() string { return "duplicate-order" }

// Description implements Scenario.
func (d *DuplicateOrder) Description() string {
	return "each order submitted K times at once; the seed's HSET create answers 'new' every time and takes the stock again"
}

// Strategies implements Scenario.
func (d *DuplicateOrder) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.OrderNaive, Expect: result.Break, Note: "the seed's add_order (HSET) and update_order_status, stock taken on every copy"},
		{Name: impl.OrderSafe, Expect: result.Hold, Note: "create-if-absent script; compare-and-set reservation"},
	}
}

// Flags implements Scenario.
func (d *DuplicateOrder) Flags(fs *pflag.FlagSet) {
	fs.Int64Var(&d.Orders, "orders", d.Orders, "distinct orders (each submitted --copies times)")
	fs.IntVar(&d.Copies, "copies", d.Copies, "concurrent submissions of each order")
	fs.IntVar(&d.Items, "items", d.Items, "items the orders spread over")
	fs.Int64Var(&d.Stock, "stock", d.Stock, "units of each item at the start")
	fs.Int64Var(&d.Quantity, "quantity", d.Quantity, "units per order")
	fs.StringVar(&d.NaiveStock, "naive-stock", d.NaiveStock, "naive only: stock strategy the order code deducts with (lua isolates the order bug; naive adds reduce_stock's races)")
}

// Validate implements Scenario.
func (d *DuplicateOrder) Validate() error {
	switch {
	case d.Orders <= 0:
		return fmt.Errorf("--orders must be > 0, got %d", d.Orders)
	case d.Copies < 1 || d.Copies > 64:
		return fmt.Errorf("--copies must be 1..64, got %d", d.Copies)
	case d.Items < 1 || d.Items > 1024:
		return fmt.Errorf("--items must be 1..1024, got %d", d.Items)
	case d.Stock < 0:
		return fmt.Errorf("--stock must be >= 0, got %d", d.Stock)
	}
	if err := impl.ValidateQuantity(d.Quantity); err != nil {
		return fmt.Errorf("--quantity: %w", err)
	}
	for _, s := range impl.StockStrategies() {
		if s == d.NaiveStock && s != impl.StockSharded && s != impl.StockShardedSlots {
			return nil
		}
	}
	return fmt.Errorf("--naive-stock must be one of naive, decr, watch, lua (the order scripts use the plain stock counter), got %q", d.NaiveStock)
}

// Params implements Scenario.
func (d *DuplicateOrder) Params() map[string]string {
	return map[string]string{
		"orders":      strconv.FormatInt(d.Orders, 10),
		"copies":      strconv.Itoa(d.Copies),
		"items":       strconv.Itoa(d.Items),
		"stock":       strconv.FormatInt(d.Stock, 10),
		"quantity":    strconv.FormatInt(d.Quantity, 10),
		"naive_stock": d.NaiveStock,
	}
}

// Steps of duplicate-order: every submission's create and reservation.
var dupSteps = []string{"create", "reserve"}

// dupTally is one worker's client-side tally, on its own cache line.
type dupTally struct {
	orders, submissions, confirmed, reserved, noStock, refusedOrders int64
	_                                                                [64]byte
}

// dupSubmission is what one copy of a submission saw.
type dupSubmission struct {
	create, reserve time.Duration
	created         bool
	applied         bool
	already         bool // the order was processing already
	noStock         bool
	err             error
	step            impl.OrderMove // the move whose call failed with err
	// The two calls as the history records them (times from the
	// worker's history log; zero without one).
	createCall, reserveCall orderCall
}

// Run implements Scenario.
func (d *DuplicateOrder) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	oopts := impl.OrderOptions{Keys: env.Keys, NaiveStock: d.NaiveStock}
	orders, err := openOrders(env.Backend, strategy, oopts)
	if err != nil {
		return cell, err
	}
	items := orderItems(d.Items)
	if err := seedOrderStock(ctx, env.Admin, env.Keys, items, d.Stock); err != nil {
		return cell, err
	}
	conc := orderConcurrency(env)
	tallies := make([]dupTally, conc)
	notes := newOrderNotes(conc)
	settles := strategy == impl.OrderSafe
	requests, duration := orderRunSize(env, d.Orders)
	// What every copy was told, for the order model: a log per worker,
	// each copy's create and reservation.
	var rec *history.Recorder
	hopts := env.Common.History
	histOps := d.Orders * int64(d.Copies) * 2
	if duration == 0 && hopts.Records(histOps) {
		rec = history.New(history.Options{Clients: conc, PerClient: int(d.Orders/int64(conc)+1) * d.Copies * 2})
	}
	classify := env.Backend.Classify

	stats, err := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Requests:    requests,
		Duration:    duration,
		Steps:       dupSteps,
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		n := impl.NewOrder{
			Item:     items[w.Seq%int64(len(items))],
			ID:       "o-" + strconv.FormatInt(w.Seq, 10),
			Quantity: d.Quantity,
			Amount:   d.Quantity * orderUnitPrice,
		}
		subs := make([]dupSubmission, d.Copies)
		start := make(chan struct{})
		var wg sync.WaitGroup
		hl := rec.Log(w.ID)
		for i := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				subs[i] = submitOrder(ctx, orders, n, hl)
			}()
		}
		close(start) // every copy goes at once: a double click, a retry storm
		wg.Wait()
		if hl != nil {
			for i, s := range subs {
				if e, ok := orderCreateEntry(w.Seq, int64(i), s.createCall, classify); ok {
					hl.Add(e)
				}
				if s.createCall.err == nil {
					if e, ok := orderMoveEntry(w.Seq, int64(i), impl.StatusProcessing, s.reserveCall, classify); ok {
						hl.Add(e)
					}
				}
			}
		}
		t := &tallies[w.ID]
		t.orders++
		f := newOpFailure(env.Backend.Classify, &notes[w.ID])
		var lostCreate, lostReserve, news, applied int64
		reached, refused := false, false
		for _, s := range subs {
			w.Observe(0, s.create)
			if s.reserve > 0 {
				w.Observe(1, s.reserve)
			}
			t.submissions++
			if s.created {
				t.confirmed++
				news++
			}
			if s.applied {
				t.reserved++
				applied++
			}
			reached = reached || s.applied || s.already
			if s.noStock {
				t.noStock++
				refused = true
			}
			if s.err != nil && f.record(s.err) {
				if s.step == impl.MoveCreate {
					lostCreate++
				} else {
					lostReserve++
				}
			}
		}
		if lostCreate > 0 {
			f.noteLost(n.Ref(), impl.MoveCreate, lostCreate, news)
		}
		if lostReserve > 0 {
			f.noteLost(n.Ref(), impl.MoveReserve, lostReserve, applied)
		}
		if refused && !reached {
			t.refusedOrders++
		}
		return f.end(n.Ref(), reached, settles)
	})
	if err != nil {
		return cell, err
	}
	stats.Fill(&cell)
	cell.History = orderHistory(ctx, env, rec, oopts, duration, histOps)

	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var sum dupTally
	for _, t := range tallies {
		sum.orders += t.orders
		sum.submissions += t.submissions
		sum.confirmed += t.confirmed
		sum.reserved += t.reserved
		sum.noStock += t.noStock
		sum.refusedOrders += t.refusedOrders
	}
	snap, err := readOrderSnapshot(vctx, env.Admin, env.Keys, items)
	if err == nil {
		err = snap.lostData()
	}
	if err != nil {
		cell.Summary = fmt.Sprintf("%d orders submitted %d× each: %d answered \"new order\", %d reservations applied; %s",
			sum.orders, d.Copies, sum.confirmed, sum.reserved, notJudged)
		return cell, JudgementError(fmt.Errorf("read back: %w", err))
	}
	st := settle(snap, notes, settles, stats)
	cell.Settled = st.ops
	d.figures(strategy, snap, sum, st, stats.ErrorCount()).judge(&cell)
	return cell, nil
}

// submitOrder is one copy of a submission: create, then reserve. hl (nil:
// none) times the calls for the history.
func submitOrder(ctx context.Context, orders impl.Orders, n impl.NewOrder, hl *history.Log) (s dupSubmission) {
	c := &s.createCall
	c.call = hl.Now()
	t0 := time.Now()
	c.order, c.ok, c.err = orders.Create(ctx, n)
	s.create = time.Since(t0)
	c.ret = hl.Now()
	s.created, s.err = c.ok, c.err
	if s.err != nil {
		s.step = impl.MoveCreate
		return s
	}
	r := &s.reserveCall
	r.call = hl.Now()
	t1 := time.Now()
	r.order, r.ok, r.err = orders.Transition(ctx, n.Ref(), impl.StatusProcessing)
	s.reserve = time.Since(t1)
	r.ret = hl.Now()
	s.applied, s.err = r.ok, r.err
	s.already = s.err == nil && !s.applied
	switch {
	case errors.Is(s.err, impl.ErrOutOfStock):
		s.noStock, s.err = true, nil
	case s.err != nil:
		s.step = impl.MoveReserve
	}
	return s
}

// dupFigures are duplicate-order's figures, computed once from the
// server's state, the workers' answers and the settlement of their lost
// replies; the invariants, the figures and the summary are all written
// from them.
type dupFigures struct {
	safe   bool
	copies int64
	// submitted counts the orders the workers submitted; onServer the
	// orders the server holds.
	submitted, onServer int64
	// Answers: submissions, "new order" answers, reservations applied,
	// copies refused for stock, orders refused for stock.
	submissions, confirmed, reserved, noStock, refusedOrders int64
	// createdLost and reservedLost count the orders a lost reply had
	// created or reserved (no answered call had).
	createdLost, reservedLost int64
	// From the server.
	processing, created, reset int64
	reservations, matched      int64
	initial, final, held       int64
	errors                     int64
	lost                       settlement
}

// taken is the stock the run took; extra what it took beyond the units
// the orders hold.
func (f dupFigures) taken() int64 { return f.initial - f.final }
func (f dupFigures) extra() int64 { return f.taken() - f.held }

// The invariants' conditions, shared by the invariants and the summary.
func (f dupFigures) deductionOK() bool { return f.extra() == 0 }
func (f dupFigures) confirmOK() bool   { return f.confirmed+f.createdLost == f.onServer }
func (f dupFigures) resetOK() bool     { return f.reset == 0 }
func (f dupFigures) finalOK() bool     { return f.final >= 0 }
func (f dupFigures) reservationsOK() bool {
	return f.matched == f.processing && f.reservations == f.matched
}

// figures computes the figures from the server's state.
func (d *DuplicateOrder) figures(strategy string, snap *orderSnapshot, sum dupTally, st settlement, errs int64) dupFigures {
	count, _ := snap.byStatus()
	f := dupFigures{
		safe:          strategy == impl.OrderSafe,
		copies:        int64(d.Copies),
		submitted:     sum.orders,
		onServer:      int64(len(snap.orders)),
		submissions:   sum.submissions,
		confirmed:     sum.confirmed,
		reserved:      sum.reserved,
		noStock:       sum.noStock,
		refusedOrders: sum.refusedOrders,
		createdLost:   st.byMove[impl.MoveCreate][1],
		reservedLost:  st.byMove[impl.MoveReserve][1],
		processing:    count[impl.StatusProcessing],
		created:       count[impl.StatusCreated],
		reservations:  int64(len(snap.reservations)),
		initial:       d.Stock * int64(d.Items),
		final:         snap.totalStock(),
		held:          snap.heldUnits(),
		errors:        errs,
		lost:          st,
	}
	// An order back in created was reset by a retried create after it
	// had been reserved. The evidence: the server recorded a reservation
	// of it (safe), or an answer showed it processing. When every copy of
	// the order was answered, one that was not refused for stock was
	// answered applied or already: an item that still has the units then
	// says so (stock only falls in this scenario). A lost reply is never
	// evidence: a reservation that may not have happened resets nothing.
	for _, o := range snap.orders {
		if o.Status != impl.StatusCreated {
			continue
		}
		reached, touched := st.touched[o.Ref()]
		switch {
		case !o.ReservedUntil.IsZero():
			f.reset++
		case touched:
			if reached {
				f.reset++
			}
		case snap.stock[o.Item] >= o.Quantity:
			f.reset++
		}
	}
	if f.safe {
		status := make(map[impl.OrderRef]impl.OrderStatus, len(snap.orders))
		for _, o := range snap.orders {
			status[o.Ref()] = o.Status
		}
		for ref := range snap.reservations {
			if status[ref] == impl.StatusProcessing {
				f.matched++
			}
		}
	}
	return f
}

// judge writes the cell's figures, invariants and summary.
func (f dupFigures) judge(cell *result.Cell) {
	cell.Figures = map[string]float64{
		"orders":                   float64(f.onServer),
		"orders_submitted":         float64(f.submitted),
		"copies":                   float64(f.copies),
		"submissions":              float64(f.submissions),
		"confirmed_new":            float64(f.confirmed),
		"created_by_lost_replies":  float64(f.createdLost),
		"reservations_applied":     float64(f.reserved),
		"reserved_by_lost_replies": float64(f.reservedLost),
		"refused_no_stock":         float64(f.noStock),
		"orders_refused_no_stock":  float64(f.refusedOrders),
		"orders_processing":        float64(f.processing),
		"orders_created":           float64(f.created),
		"orders_reset":             float64(f.reset),
		"reservations":             float64(f.reservations),
		"stock_initial":            float64(f.initial),
		"stock_final":              float64(f.final),
		"units_taken":              float64(f.taken()),
		"units_held":               float64(f.held),
		"units_taken_extra":        float64(f.extra()),
		"errors":                   float64(f.errors),
	}
	f.lost.figures(cell.Figures)
	confirmDetail := fmt.Sprintf("%d submissions were answered \"new order\"", f.confirmed)
	if f.createdLost > 0 {
		confirmDetail += fmt.Sprintf(" and %d lost replies had created their order", f.createdLost)
	}
	cell.Invariants = []result.Invariant{
		Check("one stock deduction per order", f.deductionOK(),
			"stock fell by %d units; the orders holding units account for %d (%d orders on the server, %d copies each)", f.taken(), f.held, f.onServer, f.copies),
		Check("one confirmation per order", f.confirmOK(),
			"%s for %d orders on the server", confirmDetail, f.onServer),
		Check("no order reset to created", f.resetOK(),
			"%d orders are back in created although they had been reserved", f.reset),
		Check("final stock >= 0", f.finalOK(), "final stock %d", f.final),
	}
	if f.safe {
		// The safe strategy reserves: one reservation per processing order.
		cell.Invariants = append(cell.Invariants, Check("one reservation per processing order", f.reservationsOK(),
			"%d reservations, %d of them for the %d processing orders", f.reservations, f.matched, f.processing))
	}
	cell.Summary = f.summary()
}

// summary is the cell's one line, written from the same figures and
// checks as the invariants: every broken invariant shows in it, and it
// states no equality that does not hold.
func (f dupFigures) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d orders submitted %d× each", f.submitted, f.copies)
	if f.onServer != f.submitted {
		fmt.Fprintf(&b, " (%d on the server)", f.onServer)
	}
	b.WriteString(": ")
	switch extra := f.extra(); {
	case f.confirmOK() && f.deductionOK():
		fmt.Fprintf(&b, "%d created, %d reserved (%d refused for stock), stock fell by %d units for %d held",
			f.onServer, f.processing, f.refusedOrders, f.taken(), f.held)
	default:
		fmt.Fprintf(&b, "%d answered \"new order\"", f.confirmed)
		if f.createdLost > 0 {
			fmt.Fprintf(&b, " and %d lost replies had created their order", f.createdLost)
		}
		if !f.confirmOK() {
			fmt.Fprintf(&b, " for %d orders on the server", f.onServer)
		}
		fmt.Fprintf(&b, ", stock fell by %d units for %d held", f.taken(), f.held)
		switch {
		case extra > 0:
			fmt.Fprintf(&b, " — %d units taken twice or more", extra)
		case extra < 0 && f.safe:
			fmt.Fprintf(&b, " — %d units held that the stock never gave", -extra)
		case extra < 0:
			fmt.Fprintf(&b, " — %d deductions lost to reduce_stock's races", -extra)
		}
	}
	if !f.resetOK() {
		fmt.Fprintf(&b, "; %d orders reset to created", f.reset)
	}
	if !f.finalOK() {
		fmt.Fprintf(&b, "; final stock %d", f.final)
	}
	if f.safe && !f.reservationsOK() {
		fmt.Fprintf(&b, "; %d reservations for %d processing orders (%d matching)", f.reservations, f.processing, f.matched)
	}
	if line := f.lost.line(); line != "" {
		b.WriteString("; " + line)
	}
	return b.String()
}
