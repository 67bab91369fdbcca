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
		if s == d.NaiveStock && s != impl.StockSharded {
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
	submissions, confirmed, reserved, noStock int64
	_                                         [64]byte
}

// dupSubmission is what one copy of a submission saw.
type dupSubmission struct {
	create, reserve time.Duration
	created         bool
	applied         bool
	noStock         bool
	err             error
}

// Run implements Scenario.
func (d *DuplicateOrder) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	orders, err := openOrders(env.Backend, strategy, impl.OrderOptions{Keys: env.Keys, NaiveStock: d.NaiveStock})
	if err != nil {
		return cell, err
	}
	items := orderItems(d.Items)
	if err := seedOrderStock(ctx, env.Admin, env.Keys, items, d.Stock); err != nil {
		return cell, err
	}
	conc := orderConcurrency(env)
	tallies := make([]dupTally, conc)
	requests, duration := orderRunSize(env, d.Orders)

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
		for i := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				subs[i] = submitOrder(ctx, orders, n)
			}()
		}
		close(start) // every copy goes at once: a double click, a retry storm
		wg.Wait()
		t := &tallies[w.ID]
		var firstErr error
		for _, s := range subs {
			w.Observe(0, s.create)
			if s.reserve > 0 {
				w.Observe(1, s.reserve)
			}
			t.submissions++
			if s.created {
				t.confirmed++
			}
			if s.applied {
				t.reserved++
			}
			if s.noStock {
				t.noStock++
			}
			if s.err != nil && firstErr == nil {
				firstErr = s.err
			}
		}
		return firstErr
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
	var sum dupTally
	for _, t := range tallies {
		sum.submissions += t.submissions
		sum.confirmed += t.confirmed
		sum.reserved += t.reserved
		sum.noStock += t.noStock
	}
	d.judge(&cell, strategy, snap, sum, stats.ErrorCount())
	return cell, nil
}

// submitOrder is one copy of a submission: create, then reserve.
func submitOrder(ctx context.Context, orders impl.Orders, n impl.NewOrder) (s dupSubmission) {
	t0 := time.Now()
	_, s.created, s.err = orders.Create(ctx, n)
	s.create = time.Since(t0)
	if s.err != nil {
		return s
	}
	t1 := time.Now()
	_, s.applied, s.err = orders.Transition(ctx, n.Ref(), impl.StatusProcessing)
	s.reserve = time.Since(t1)
	if errors.Is(s.err, impl.ErrOutOfStock) {
		s.noStock, s.err = true, nil
	}
	return s
}

// judge reads the verdict's figures from the server's state.
func (d *DuplicateOrder) judge(cell *result.Cell, strategy string, snap *orderSnapshot, sum dupTally, errs int64) {
	initial := d.Stock * int64(d.Items)
	final := snap.totalStock()
	taken := initial - final
	held := snap.heldUnits()
	count, _ := snap.byStatus()
	onServer := int64(len(snap.orders))

	// An order left in created although its item still has the units was
	// reset by a retried create after it had been reserved (or never
	// reserved for no reason).
	var reset int64
	for _, o := range snap.orders {
		if o.Status == impl.StatusCreated && snap.stock[o.Item] >= o.Quantity {
			reset++
		}
	}
	extra := taken - held
	cell.Figures = map[string]float64{
		"orders":               float64(onServer),
		"copies":               float64(d.Copies),
		"submissions":          float64(sum.submissions),
		"confirmed_new":        float64(sum.confirmed),
		"reservations_applied": float64(sum.reserved),
		"refused_no_stock":     float64(sum.noStock),
		"orders_processing":    float64(count[impl.StatusProcessing]),
		"orders_created":       float64(count[impl.StatusCreated]),
		"orders_reset":         float64(reset),
		"reservations":         float64(len(snap.reservations)),
		"stock_initial":        float64(initial),
		"stock_final":          float64(final),
		"units_taken":          float64(taken),
		"units_held":           float64(held),
		"units_taken_extra":    float64(extra),
		"errors":               float64(errs),
	}
	cell.Invariants = []result.Invariant{
		Check("one stock deduction per order", taken == held,
			"stock fell by %d units; the orders holding units account for %d (%d orders on the server, %d copies each)", taken, held, onServer, d.Copies),
		Check("one confirmation per order", sum.confirmed == onServer,
			"%d submissions were answered \"new order\" for %d orders on the server", sum.confirmed, onServer),
		Check("no order reset to created", reset == 0,
			"%d orders are back in created although their item has the units", reset),
		Check("final stock >= 0", final >= 0, "final stock %d", final),
	}
	if strategy == impl.OrderSafe {
		// The safe strategy reserves: one reservation per processing order.
		status := make(map[impl.OrderRef]impl.OrderStatus, len(snap.orders))
		for _, o := range snap.orders {
			status[o.Ref()] = o.Status
		}
		matched := int64(0)
		for ref := range snap.reservations {
			if status[ref] == impl.StatusProcessing {
				matched++
			}
		}
		cell.Invariants = append(cell.Invariants, Check("one reservation per processing order",
			matched == count[impl.StatusProcessing] && int64(len(snap.reservations)) == matched,
			"%d reservations, %d of them for the %d processing orders", len(snap.reservations), matched, count[impl.StatusProcessing]))
	}
	switch {
	case extra > 0:
		cell.Summary = fmt.Sprintf("%d orders submitted %d× each: %d answered \"new order\", stock fell by %d units for %d held — %d units taken twice or more",
			onServer, d.Copies, sum.confirmed, taken, held, extra)
	case extra < 0:
		cell.Summary = fmt.Sprintf("%d orders submitted %d× each: %d answered \"new order\", stock fell by %d units for %d held — %d deductions lost to reduce_stock's races",
			onServer, d.Copies, sum.confirmed, taken, held, -extra)
	case sum.confirmed != onServer:
		cell.Summary = fmt.Sprintf("%d orders submitted %d× each: %d answered \"new order\", stock fell by %d units for %d held",
			onServer, d.Copies, sum.confirmed, taken, held)
	default:
		cell.Summary = fmt.Sprintf("%d orders submitted %d× each: %d created, %d reserved (%d refused for stock), stock fell by %d units for %d held",
			onServer, d.Copies, sum.confirmed, sum.reserved, count[impl.StatusCreated], taken, held)
	}
	if reset > 0 {
		cell.Summary += fmt.Sprintf("; %d orders reset to created", reset)
	}
}
