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
		var times checkoutTimes
		var err error
		if strategy == impl.OrderNaive {
			err = c.seedCheckout(ctx, locker, orders, n, abandon, &times)
		} else {
			err = c.safeCheckout(ctx, orders, n, abandon, &times, t)
		}
		times.observe(w)
		switch {
		case err != nil:
			return err
		case abandon:
			t.abandoned++
		case times[stepCheckoutComplete] > 0:
			t.completed++
		}
		return nil
	})
	if err != nil {
		return cell, err
	}
	stats.Fill(&cell)

	// Wait the reservations out, then read the item's stock through the
	// backend under test: the read returns overdue reservations (lazy
	// expiry) — for the naive strategy it only reads.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second+c.ReservationTTL)
	defer cancel()
	if strategy == impl.OrderSafe {
		if err := impl.Sleep(vctx, c.ReservationTTL+20*time.Millisecond); err != nil {
			return cell, err
		}
	}
	avail, err := orders.Available(vctx, checkoutItem)
	if err != nil {
		return cell, fmt.Errorf("available after the reservations expired: %w", err)
	}
	snap, err := readOrderSnapshot(vctx, env.Admin, env.Keys, items)
	if err != nil {
		return cell, err
	}
	var sum checkoutTally
	for _, t := range tallies {
		sum.checkouts += t.checkouts
		sum.completed += t.completed
		sum.abandoned += t.abandoned
		sum.noStock += t.noStock
		sum.expired += t.expired
	}
	c.judge(&cell, snap, sum, avail, stats.ErrorCount())
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
func (c *Checkout) seedCheckout(ctx context.Context, locker impl.Locker, orders impl.Orders, n impl.NewOrder, abandon bool, times *checkoutTimes) error {
	start := time.Now()
	lease, err := locker.Acquire(ctx, checkoutLock)
	if err != nil {
		return err
	}
	var threadTimes checkoutTimes
	done := make(chan error, 1)
	go func() { done <- seedOrderThread(ctx, orders, n, abandon, &threadTimes) }()
	err = locker.Release(ctx, lease) // at once: the thread runs unprotected
	times[stepCheckoutLock] = time.Since(start)
	// The seed never joins its thread; the harness does, after the
	// release, only to record the thread's steps.
	threadErr := <-done
	copy(times[:stepCheckoutLock], threadTimes[:stepCheckoutLock])
	return errors.Join(err, threadErr)
}

// seedOrderThread is the seed's order_processing_thread on the naive
// order strategy (whose processing step is reduce_stock, answer ignored).
func seedOrderThread(ctx context.Context, orders impl.Orders, n impl.NewOrder, abandon bool, times *checkoutTimes) error {
	if err := times.timed(stepCheckoutCreate, func() error { _, _, err := orders.Create(ctx, n); return err }); err != nil {
		return err
	}
	if err := times.timed(stepCheckoutReserve, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusProcessing)
		return err
	}); err != nil || abandon {
		return err
	}
	if err := times.timed(stepCheckoutPay, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusPaid)
		return err
	}); err != nil {
		return err
	}
	return times.timed(stepCheckoutComplete, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusCompleted)
		return err
	})
}

// safeCheckout creates the order, reserves its units (cancelling the order
// when the stock is short), pays and completes; an abandoning buyer stops
// after the reservation, which then expires.
func (c *Checkout) safeCheckout(ctx context.Context, orders impl.Orders, n impl.NewOrder, abandon bool, times *checkoutTimes, t *checkoutTally) error {
	if err := times.timed(stepCheckoutCreate, func() error { _, _, err := orders.Create(ctx, n); return err }); err != nil {
		return err
	}
	err := times.timed(stepCheckoutReserve, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusProcessing)
		return err
	})
	if errors.Is(err, impl.ErrOutOfStock) {
		t.noStock++
		_, _, err = orders.Transition(ctx, n.Ref(), impl.StatusCancelled)
		return err
	}
	if err != nil || abandon {
		return err
	}
	err = times.timed(stepCheckoutPay, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusPaid)
		return err
	})
	if errors.Is(err, impl.ErrReservationExpired) {
		t.expired++ // too slow to pay: the order is cancelled, its units back
		return nil
	}
	if err != nil {
		return err
	}
	return times.timed(stepCheckoutComplete, func() error {
		_, _, err := orders.Transition(ctx, n.Ref(), impl.StatusCompleted)
		return err
	})
}

// judge reads the verdict's figures from the server's state, after the
// reservations expired.
func (c *Checkout) judge(cell *result.Cell, snap *orderSnapshot, sum checkoutTally, avail impl.Availability, errs int64) {
	final := snap.stock[checkoutItem]
	count, units := snap.byStatus()
	completed, completedUnits := count[impl.StatusCompleted], units[impl.StatusCompleted]
	sold := units[impl.StatusPaid] + units[impl.StatusCompleted]
	deducted := c.Stock - final
	allowed := c.Stock / c.Quantity
	unsettled := count[impl.StatusProcessing]
	wantLedger := snap.capturedAmount()
	var expired int64
	for _, o := range snap.orders {
		if o.Status == impl.StatusCancelled && o.CancelReason == impl.CancelExpired {
			expired++
		}
	}
	cell.Figures = map[string]float64{
		"stock_initial":        float64(c.Stock),
		"stock_final":          float64(final),
		"orders":               float64(len(snap.orders)),
		"orders_completed":     float64(completed),
		"orders_allowed":       float64(allowed),
		"orders_cancelled":     float64(count[impl.StatusCancelled]),
		"orders_unsettled":     float64(unsettled),
		"units_completed":      float64(completedUnits),
		"units_sold":           float64(sold),
		"units_deducted":       float64(deducted),
		"units_oversold":       float64(max(0, completedUnits-c.Stock)),
		"checkouts":            float64(sum.checkouts),
		"abandoned":            float64(sum.abandoned),
		"refused_no_stock":     float64(sum.noStock),
		"pay_after_expiry":     float64(sum.expired),
		"reservations_expired": float64(expired),
		"released_at_the_end":  float64(avail.Released),
		"reservations_left":    float64(len(snap.reservations)),
		"ledger_net":           float64(snap.ledgerNet),
		"ledger_expected":      float64(wantLedger),
		"errors":               float64(errs),
	}
	cell.Invariants = []result.Invariant{
		Check("completed orders within stock", completed <= allowed,
			"%d orders completed for %d units; %d units in stock allowed %d", completed, completedUnits, c.Stock, allowed),
		Check("completed × quantity == units deducted", completedUnits == deducted,
			"completed orders hold %d units; stock went from %d to %d (%d deducted)", completedUnits, c.Stock, final, deducted),
		Check("final stock >= 0", final >= 0, "final stock %d", final),
		Check("stock + sold == initial after reservations expire", final+sold == c.Stock,
			"stock %d + sold %d = %d, initial %d (%d unpaid orders still hold units)", final, sold, final+sold, c.Stock, unsettled),
		Check("no unpaid order holds units after its TTL", unsettled == 0 && len(snap.reservations) == 0,
			"%d orders still processing, %d reservations left", unsettled, len(snap.reservations)),
		Check("ledger == paid and completed orders", snap.ledgerNet == wantLedger && snap.strayLedger == 0,
			"ledger nets %d cents, paid and completed orders come to %d", snap.ledgerNet, wantLedger),
	}
	if completed > allowed || completedUnits != deducted {
		cell.Summary = fmt.Sprintf("%d buyers, %d units: %d orders completed (%d allowed) for %d units while stock fell by %d — oversold by %d units",
			sum.checkouts, c.Stock, completed, allowed, completedUnits, deducted, max(0, completedUnits-c.Stock))
	} else {
		cell.Summary = fmt.Sprintf("%d buyers, %d units: %d completed, %d refused for stock, %d reservations expired; stock %d + sold %d == %d",
			sum.checkouts, c.Stock, completed, sum.noStock, expired, final, sold, c.Stock)
	}
	if unsettled > 0 {
		cell.Summary += fmt.Sprintf("; %d abandoned orders keep their units for good", unsettled)
	}
}
