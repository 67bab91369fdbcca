package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newCheckout() }) }

// Checkout is the seed's worked example end to end: buyers check out one
// item whose stock is smaller than the demand.
//
// naive runs the seed as written: take the global lock order_lock with the
// seed's get_lock (the lock family's naive strategy, through the backend
// under test), start the order-processing "thread" on a goroutine, release
// the lock at once — so the lock protects nothing — while the thread adds
// the order, sets it processing, calls reduce_stock (the seed's GET,
// compare, SET) and ignores its answer, and marks the order paid and
// completed regardless. The harness waits for the thread after the
// release, only to record its step latencies.
//
// safe does it right, without a global lock (every step is one atomic
// script, so a lock would only serialise checkouts): create the order
// idempotently, reserve its units with a TTL (refused → the order is
// cancelled), pay (the reservation becomes a sale and the ledger gets the
// capture), complete. In both, a share of the buyers abandon their cart
// after the reservation step and never pay; safe returns their units when
// the reservation expires.
type Checkout struct {
	// Stock is the item's units at the start.
	Stock int64
	// Buyers is the number of checkouts (ignored when a duration drives
	// the run).
	Buyers int64
	// Quantity is the units each buyer takes.
	Quantity int64
	// Abandon is the share of buyers (0..1) who reserve and never pay.
	Abandon float64
	// ReservationTTL is how long the safe strategy holds an unpaid
	// reservation.
	ReservationTTL time.Duration
	// LockTTL and LockPoll are the seed's lock: get_lock(lock_key, 10)
	// and its time.sleep(0.1) between attempts.
	LockTTL, LockPoll time.Duration
}

func newCheckout() *Checkout {
	return &Checkout{
		Stock:          30,
		Buyers:         100,
		Quantity:       1,
		Abandon:        0.2,
		ReservationTTL: 300 * time.Millisecond,
		LockTTL:        10 * time.Second,
		LockPoll:       impl.DefaultNaivePoll,
	}
}

// Name implements Scenario.
func (c *Checkout) Name() string { return "checkout" }

// Description implements Scenario.
func (c *Checkout) Description() string {
	return "the seed's worked example: lock released before the work, reduce_stock ignored, completed regardless"
}

// Strategies implements Scenario.
func (c *Checkout) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.OrderNaive, Expect: result.Break, Note: "the seed's example: lock, start the thread, unlock; stock answer ignored"},
		{Name: impl.OrderSafe, Expect: result.Hold, Note: "idempotent create, reservation with TTL, atomic pay and complete"},
	}
}

// Flags implements Scenario.
func (c *Checkout) Flags(fs *pflag.FlagSet) {
	fs.Int64Var(&c.Stock, "stock", c.Stock, "units of the item at the start")
	fs.Int64Var(&c.Buyers, "buyers", c.Buyers, "checkouts (one order each)")
	fs.Int64Var(&c.Quantity, "quantity", c.Quantity, "units per order")
	fs.Float64Var(&c.Abandon, "abandon", c.Abandon, "share of buyers who reserve and never pay (0..1)")
	fs.DurationVar(&c.ReservationTTL, "reservation-ttl", c.ReservationTTL, "safe only: how long an unpaid reservation holds its units")
	fs.DurationVar(&c.LockTTL, "lock-ttl", c.LockTTL, "naive only: the seed's lock lease (get_lock(lock_key, 10))")
	fs.DurationVar(&c.LockPoll, "lock-poll", c.LockPoll, "naive only: the seed's lock's pause between attempts")
}

// Validate implements Scenario.
func (c *Checkout) Validate() error {
	switch {
	case c.Stock < 0:
		return fmt.Errorf("--stock must be >= 0, got %d", c.Stock)
	case c.Buyers <= 0:
		return fmt.Errorf("--buyers must be > 0, got %d", c.Buyers)
	case c.Abandon < 0 || c.Abandon > 1:
		return fmt.Errorf("--abandon must be 0..1, got %v", c.Abandon)
	case c.ReservationTTL < time.Millisecond || c.ReservationTTL > time.Minute:
		return fmt.Errorf("--reservation-ttl must be 1ms..1m (the cell waits it out), got %s", c.ReservationTTL)
	case c.LockTTL < time.Millisecond:
		return fmt.Errorf("--lock-ttl must be at least 1ms, got %s", c.LockTTL)
	case c.LockPoll <= 0:
		return fmt.Errorf("--lock-poll must be positive, got %s", c.LockPoll)
	}
	if err := impl.ValidateQuantity(c.Quantity); err != nil {
		return fmt.Errorf("--quantity: %w", err)
	}
	return nil
}

// Params implements Scenario.
func (c *Checkout) Params() map[string]string {
	return map[string]string{
		"stock":           strconv.FormatInt(c.Stock, 10),
		"buyers":          strconv.FormatInt(c.Buyers, 10),
		"quantity":        strconv.FormatInt(c.Quantity, 10),
		"abandon":         strconv.FormatFloat(c.Abandon, 'g', -1, 64),
		"reservation_ttl": c.ReservationTTL.String(),
		"lock_ttl":        c.LockTTL.String(),
		"lock_poll":       c.LockPoll.String(),
	}
}

// Checkout steps, in Config.Steps order; the naive strategy adds the
// seed's lock (acquire and release).
const (
	stepCheckoutCreate = iota
	stepCheckoutReserve
	stepCheckoutPay
	stepCheckoutComplete
	stepCheckoutLock
)

var checkoutSteps = []string{"create", "reserve", "pay", "complete", "lock"}

// checkoutItem is the one item every buyer wants; checkoutLock the seed's
// lock_key.
const (
	checkoutItem = "sku-0"
	checkoutLock = "order_lock"
)

// checkoutTally is one worker's client-side tally, on its own cache line.
type checkoutTally struct {
	checkouts, completed, abandoned, noStock, expired int64
	_                                                 [64]byte
}

// checkoutTimes is what one checkout's steps took (zero: not run), indexed
// like checkoutSteps.
type checkoutTimes [stepCheckoutLock + 1]time.Duration

func (t *checkoutTimes) observe(w *bench.Worker) {
	for i, d := range t {
		if d > 0 {
			w.Observe(i, d)
		}
	}
}

// timed runs f and records its duration in step i.
func (t *checkoutTimes) timed(i int, f func() error) error {
	start := time.Now()
	err := f()
	t[i] = max(time.Since(start), time.Nanosecond)
	return err
}

// moveLock names the seed's lock calls among the moves a naive checkout
// notes when their reply is lost: not an order move, never settled.
const moveLock impl.OrderMove = "lock"

// Run implements Scenario.
func (c *Checkout) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	orders, err := openOrders(env.Backend, strategy, impl.OrderOptions{
		Keys:           env.Keys,
		ReservationTTL: c.ReservationTTL,
		NaiveStock:     impl.StockNaive, // the seed's reduce_stock
	})
	if err != nil {
		return cell, err
	}
	var locker impl.Locker
	steps := checkoutSteps[:stepCheckoutLock]
	if strategy == impl.OrderNaive {
		lb, ok := env.Backend.(impl.LockBackend)
		if !ok {
			return cell, fmt.Errorf("%s: lock family: %w", env.Backend.Name(), impl.ErrNotSupported)
		}
		if locker, err = lb.Lock(impl.LockNaive, impl.LockOptions{Keys: env.Keys, TTL: c.LockTTL, Poll: c.LockPoll}); err != nil {
			return cell, err
		}
		steps = checkoutSteps
	}
	items := []string{checkoutItem}
	if err := seedOrderStock(ctx, env.Admin, env.Keys, items, c.Stock); err != nil {
		return cell, err
	}
	conc := orderConcurrency(env)
	tallies := make([]checkoutTally, conc)
	notes := newOrderNotes(conc)
	settles := strategy == impl.OrderSafe
	requests, duration := orderRunSize(env, c.Buyers)

	stats, err := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Requests:    requests,
		Duration:    duration,
		Steps:       steps,
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		t := &tallies[w.ID]
		t.checkouts++
		n := impl.NewOrder{
			Item:     checkoutItem,
			ID:       "b-" + strconv.FormatInt(w.Seq, 10),
			Quantity: c.Quantity,
			Amount:   c.Quantity * orderUnitPrice,
		}
		abandon := w.Rand.Float64() < c.Abandon
		f := newOpFailure(env.Backend.Classify, &notes[w.ID])
		var times checkoutTimes
		if strategy == impl.OrderNaive {
			c.seedCheckout(ctx, locker, orders, n, abandon, &times, &f)
		} else {
			c.safeCheckout(ctx, orders, n, abandon, &times, t, &f)
		}
		times.observe(w)
		switch {
		case f.err != nil:
		case abandon:
			t.abandoned++
		case times[stepCheckoutComplete] > 0:
			t.completed++
		}
		return f.end(n.Ref(), false, settles)
	})
	if err != nil {
		return cell, err
	}
	stats.Fill(&cell)

	// Wait the reservations out, then read the item's stock through the
	// backend under test: the read returns overdue reservations (lazy
	// expiry) — for the naive strategy it only reads. Both are the
	// judgement's reads: when they fail, the cell keeps its measurements
	// and is not judged.
	var sum checkoutTally
	for _, t := range tallies {
		sum.checkouts += t.checkouts
		sum.completed += t.completed
		sum.abandoned += t.abandoned
		sum.noStock += t.noStock
		sum.expired += t.expired
	}
	unjudged := func(err error) (result.Cell, error) {
		cell.Summary = fmt.Sprintf("%d buyers, %d units: %d checkouts answered completed, %d refused for stock; %s",
			sum.checkouts, c.Stock, sum.completed, sum.noStock, notJudged)
		return cell, JudgementError(err)
	}
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second+c.ReservationTTL)
	defer cancel()
	if strategy == impl.OrderSafe {
		if err := impl.Sleep(vctx, c.ReservationTTL+20*time.Millisecond); err != nil {
			return unjudged(fmt.Errorf("wait for the reservations to expire: %w", err))
		}
	}
	avail, err := orders.Available(vctx, checkoutItem)
	if err != nil {
		return unjudged(fmt.Errorf("available after the reservations expired: %w", err))
	}
	snap, err := readOrderSnapshot(vctx, env.Admin, env.Keys, items)
	if err == nil {
		err = snap.lostData()
	}
	if err != nil {
		return unjudged(fmt.Errorf("read back: %w", err))
	}
	st := settle(snap, notes, settles, stats)
	cell.Settled = st.ops
	c.figures(snap, sum, avail, st, stats.ErrorCount()).judge(&cell)
	cell.Summary += "; p50/p99 per step: " + checkoutStepLine(stats, steps)
	return cell, nil
}

// checkoutStepLine shows each step's p50/p99 in milliseconds, in order.
func checkoutStepLine(stats *bench.Stats, steps []string) string {
	var b strings.Builder
	for i, name := range steps {
		h := stats.Steps[name]
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s/%s", name, checkoutMs(h.ValueAtQuantile(50)), checkoutMs(h.ValueAtQuantile(99)))
	}
	return b.String()
}

// checkoutMs formats microseconds as milliseconds, short.
func checkoutMs(us int64) string {
	ms := float64(us) / 1e3
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	}
	return strconv.FormatFloat(ms/1e3, 'f', 1, 64) + "s"
}

// seedCheckout is the seed's worked example:
//
//	get_lock(lock_key, 10)
//	thread = threading.Thread(target=order_processing_thread, ...)
//	thread.start()
//	release_lock(lock_key)
//
// with order_processing_thread = add_order, update_order_status
// ('processing'), reduce_stock (answer ignored), update_order_status
// ('completed') — plus the payment step every checkout has, as unchecked
// as the rest. An abandoning buyer's thread stops after reduce_stock.
// Failed calls go to f.
func (c *Checkout) seedCheckout(ctx context.Context, locker impl.Locker, orders impl.Orders, n impl.NewOrder, abandon bool, times *checkoutTimes, f *opFailure) {
	start := time.Now()
	lease, err := locker.Acquire(ctx, checkoutLock)
	if err != nil {
		times[stepCheckoutLock] = time.Since(start)
		f.fail(err, n.Ref(), moveLock)
		return
	}
	var threadTimes checkoutTimes
	type threadEnd struct {
		err  error
		move impl.OrderMove
	}
	done := make(chan threadEnd, 1)
	go func() {
		move, err := seedOrderThread(ctx, orders, n, abandon, &threadTimes)
		done <- threadEnd{err, move}
	}()
	err = locker.Release(ctx, lease) // at once: the thread runs unprotected
	times[stepCheckoutLock] = time.Since(start)
	// The seed never joins its thread; the harness does, after the
	// release, only to record the thread's steps.
	end := <-done
	copy(times[:stepCheckoutLock], threadTimes[:stepCheckoutLock])
	if err != nil {
		f.fail(err, n.Ref(), moveLock)
	}
	if end.err != nil {
		f.fail(end.err, n.Ref(), end.move)
	}
}

// seedOrderThread is the seed's order_processing_thread on the naive
// order strategy (whose processing step is reduce_stock, answer ignored).
// It returns the move whose call failed, with the error.
func seedOrderThread(ctx context.Context, orders impl.Orders, n impl.NewOrder, abandon bool, times *checkoutTimes) (impl.OrderMove, error) {
	if err := times.timed(stepCheckoutCreate, func() error { _, _, err := orders.Create(ctx, n); return err }); err != nil {
		return impl.MoveCreate, err
	}
	if err := times.timed(stepCheckoutReserve, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusProcessing)
		return err
	}); err != nil || abandon {
		return impl.MoveReserve, err
	}
	if err := times.timed(stepCheckoutPay, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusPaid)
		return err
	}); err != nil {
		return impl.MovePay, err
	}
	return impl.MoveComplete, times.timed(stepCheckoutComplete, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusCompleted)
		return err
	})
}

// safeCheckout creates the order, reserves its units (cancelling the order
// when the stock is short), pays and completes; an abandoning buyer stops
// after the reservation, which then expires. A failed call ends the
// checkout and goes to f.
func (c *Checkout) safeCheckout(ctx context.Context, orders impl.Orders, n impl.NewOrder, abandon bool, times *checkoutTimes, t *checkoutTally, f *opFailure) {
	ref := n.Ref()
	if err := times.timed(stepCheckoutCreate, func() error { _, _, err := orders.Create(ctx, n); return err }); err != nil {
		f.fail(err, ref, impl.MoveCreate)
		return
	}
	err := times.timed(stepCheckoutReserve, func() error {
		_, _, err := orders.Transition(ctx, ref, impl.StatusProcessing)
		return err
	})
	if errors.Is(err, impl.ErrOutOfStock) {
		t.noStock++
		if _, _, err := orders.Transition(ctx, ref, impl.StatusCancelled); err != nil {
			f.fail(err, ref, impl.MoveCancel)
		}
		return
	}
	if err != nil {
		f.fail(err, ref, impl.MoveReserve)
		return
	}
	if abandon {
		return
	}
	err = times.timed(stepCheckoutPay, func() error {
		_, _, err := orders.Transition(ctx, ref, impl.StatusPaid)
		return err
	})
	if errors.Is(err, impl.ErrReservationExpired) {
		t.expired++ // too slow to pay: the order is cancelled, its units back
		return
	}
	if err != nil {
		f.fail(err, ref, impl.MovePay)
		return
	}
	if err := times.timed(stepCheckoutComplete, func() error {
		_, _, err := orders.Transition(ctx, ref, impl.StatusCompleted)
		return err
	}); err != nil {
		f.fail(err, ref, impl.MoveComplete)
	}
}

// checkoutFigures are checkout's figures, computed once from the server's
// state after the reservations expired, the workers' answers and the
// settlement of their lost replies; the invariants, the figures and the
// summary are all written from them.
type checkoutFigures struct {
	// initial and final stock, units per order, orders the stock allows.
	initial, final, quantity, allowed int64
	// Answers: checkouts, abandoned, refused for stock, paid too late.
	checkouts, abandoned, noStock, payExpired int64
	// From the server: orders by status; processing orders left.
	orders, completed, paid, cancelled, unsettled int64
	// Units of completed orders and of sold (paid or completed) ones.
	completedUnits, soldUnits int64
	// Reservations that expired (cancel reason), returned by the final
	// read, and left.
	expired, releasedAtEnd, reservationsLeft int64
	ledgerNet, ledgerExpected, strayLedger   int64
	errors                                   int64
	lost                                     settlement
}

// deducted is the stock the run took; sold the orders that hold units
// for good (paid or completed).
func (f checkoutFigures) deducted() int64 { return f.initial - f.final }
func (f checkoutFigures) sold() int64     { return f.paid + f.completed }

// The invariants' conditions, shared by the invariants and the summary.
func (f checkoutFigures) withinStockOK() bool { return f.sold() <= f.allowed }
func (f checkoutFigures) deductedOK() bool    { return f.soldUnits == f.deducted() }
func (f checkoutFigures) finalOK() bool       { return f.final >= 0 }
func (f checkoutFigures) balanceOK() bool     { return f.final+f.soldUnits == f.initial }
func (f checkoutFigures) releasedOK() bool    { return f.unsettled == 0 && f.reservationsLeft == 0 }
func (f checkoutFigures) ledgerOK() bool {
	return f.ledgerNet == f.ledgerExpected && f.strayLedger == 0
}

// figures computes the figures from the server's state.
func (c *Checkout) figures(snap *orderSnapshot, sum checkoutTally, avail impl.Availability, st settlement, errs int64) checkoutFigures {
	count, units := snap.byStatus()
	f := checkoutFigures{
		initial:          c.Stock,
		final:            snap.stock[checkoutItem],
		quantity:         c.Quantity,
		allowed:          c.Stock / c.Quantity,
		checkouts:        sum.checkouts,
		abandoned:        sum.abandoned,
		noStock:          sum.noStock,
		payExpired:       sum.expired,
		orders:           int64(len(snap.orders)),
		completed:        count[impl.StatusCompleted],
		paid:             count[impl.StatusPaid],
		cancelled:        count[impl.StatusCancelled],
		unsettled:        count[impl.StatusProcessing],
		completedUnits:   units[impl.StatusCompleted],
		soldUnits:        units[impl.StatusPaid] + units[impl.StatusCompleted],
		releasedAtEnd:    avail.Released,
		reservationsLeft: int64(len(snap.reservations)),
		ledgerNet:        snap.ledgerNet,
		ledgerExpected:   snap.capturedAmount(),
		strayLedger:      snap.strayLedger,
		errors:           errs,
		lost:             st,
	}
	for _, o := range snap.orders {
		if o.Status == impl.StatusCancelled && o.CancelReason == impl.CancelExpired {
			f.expired++
		}
	}
	return f
}

// judge writes the cell's figures, invariants and summary (without the
// step line, which Run adds).
func (f checkoutFigures) judge(cell *result.Cell) {
	cell.Figures = map[string]float64{
		"stock_initial":        float64(f.initial),
		"stock_final":          float64(f.final),
		"orders":               float64(f.orders),
		"orders_completed":     float64(f.completed),
		"orders_paid":          float64(f.paid),
		"orders_sold":          float64(f.sold()),
		"orders_allowed":       float64(f.allowed),
		"orders_cancelled":     float64(f.cancelled),
		"orders_unsettled":     float64(f.unsettled),
		"units_completed":      float64(f.completedUnits),
		"units_sold":           float64(f.soldUnits),
		"units_deducted":       float64(f.deducted()),
		"units_oversold":       float64(max(0, f.soldUnits-f.initial)),
		"checkouts":            float64(f.checkouts),
		"abandoned":            float64(f.abandoned),
		"refused_no_stock":     float64(f.noStock),
		"pay_after_expiry":     float64(f.payExpired),
		"reservations_expired": float64(f.expired),
		"released_at_the_end":  float64(f.releasedAtEnd),
		"reservations_left":    float64(f.reservationsLeft),
		"ledger_net":           float64(f.ledgerNet),
		"ledger_expected":      float64(f.ledgerExpected),
		"errors":               float64(f.errors),
	}
	f.lost.figures(cell.Figures)
	cell.Invariants = []result.Invariant{
		Check("orders sold within stock", f.withinStockOK(),
			"%d orders sold (%d completed, %d paid) for %d units; %d units in stock allowed %d", f.sold(), f.completed, f.paid, f.soldUnits, f.initial, f.allowed),
		Check("sold × quantity == units deducted", f.deductedOK(),
			"paid and completed orders hold %d units; stock went from %d to %d (%d deducted)", f.soldUnits, f.initial, f.final, f.deducted()),
		Check("final stock >= 0", f.finalOK(), "final stock %d", f.final),
		Check("stock + sold == initial after reservations expire", f.balanceOK(),
			"stock %d + sold %d = %d, initial %d (%d unpaid orders still hold units)", f.final, f.soldUnits, f.final+f.soldUnits, f.initial, f.unsettled),
		Check("no unpaid order holds units after its TTL", f.releasedOK(),
			"%d orders still processing, %d reservations left", f.unsettled, f.reservationsLeft),
		Check("ledger == paid and completed orders", f.ledgerOK(),
			"ledger nets %d cents, paid and completed orders come to %d (%d entries for unknown orders)", f.ledgerNet, f.ledgerExpected, f.strayLedger),
	}
	cell.Summary = f.summary()
}

// summary is the cell's one line, written from the same figures as the
// invariants: every broken invariant shows in it, and it states no
// equality that does not hold.
func (f checkoutFigures) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d buyers, %d units: ", f.checkouts, f.initial)
	sold := "completed"
	if f.paid > 0 {
		sold = fmt.Sprintf("sold (%d completed, %d paid)", f.completed, f.paid)
	}
	if !f.withinStockOK() || !f.deductedOK() {
		fmt.Fprintf(&b, "%d orders %s", f.sold(), sold)
		if !f.withinStockOK() {
			fmt.Fprintf(&b, " (%d allowed)", f.allowed)
		}
		fmt.Fprintf(&b, " for %d units while stock fell by %d", f.soldUnits, f.deducted())
		switch diff := f.soldUnits - f.deducted(); {
		case diff > 0:
			fmt.Fprintf(&b, " — oversold by %d units", diff)
		case diff < 0:
			fmt.Fprintf(&b, " — %d units deducted that no sale holds", -diff)
		}
	} else {
		fmt.Fprintf(&b, "%d %s, %d refused for stock, %d reservations expired", f.sold(), sold, f.noStock, f.expired)
	}
	fmt.Fprintf(&b, "; stock %d + sold %d %s %d", f.final, f.soldUnits, eqSign(f.balanceOK()), f.initial)
	if !f.finalOK() {
		fmt.Fprintf(&b, "; final stock %d", f.final)
	}
	if !f.releasedOK() {
		fmt.Fprintf(&b, "; %d unpaid orders keep their units for good (%d reservations left)", f.unsettled, f.reservationsLeft)
	}
	if !f.ledgerOK() {
		fmt.Fprintf(&b, "; ledger %d cents ≠ paid and completed orders' %d (%d entries for unknown orders)", f.ledgerNet, f.ledgerExpected, f.strayLedger)
	}
	if line := f.lost.line(); line != "" {
		b.WriteString("; " + line)
	}
	return b.String()
}
