package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
)

// This file holds what the order scenarios (duplicate-order, pay-cancel,
// checkout) share — opening the family, reading the server's state back —
// and the order family's `paybench load` operations.

func init() {
	strategies := []string{impl.OrderSafe, impl.OrderNaive}
	RegisterOperation(Operation{
		Name:        "order.create",
		Description: "create one new order (safe: idempotent create script; naive: the seed's HSET)",
		Strategies:  strategies,
		Setup:       setupOrderCreate,
	})
	RegisterOperation(Operation{
		Name:        "order.get",
		Description: "read one order (safe: script that expires an overdue reservation; naive: HGETALL)",
		Strategies:  strategies,
		Setup:       setupOrderGet,
	})
	RegisterOperation(Operation{
		Name:        "order.pay",
		Description: "the payment path of a fresh order: create, reserve its stock (created→processing), pay (processing→paid)",
		Strategies:  strategies,
		Setup:       setupOrderPay,
	})
}

// Order scenario defaults shared by the three scenarios.
const (
	// orderUnitPrice is the price of one unit, in cents.
	orderUnitPrice = 1999
	// orderLoadStock is each item's stock in a load run: large enough that
	// no run empties it.
	orderLoadStock = 1 << 40
	// orderDefaultConcurrency applies when Common.Concurrency is 0.
	orderDefaultConcurrency = 50
)

// openOrders returns the strategy of the order family on env's backend.
func openOrders(backend impl.Backend, strategy string, opts impl.OrderOptions) (impl.Orders, error) {
	ob, ok := backend.(impl.OrderBackend)
	if !ok {
		return nil, fmt.Errorf("%s: %w", backend.Name(), impl.ErrNotSupported)
	}
	return ob.Orders(strategy, opts)
}

// orderItems names the n items a scenario spreads its orders over.
func orderItems(n int) []string {
	items := make([]string, n)
	for i := range items {
		items[i] = "sku-" + strconv.Itoa(i)
	}
	return items
}

// seedOrderStock sets every item's stock through the neutral client.
func seedOrderStock(ctx context.Context, admin *redis.Client, keys impl.Keyspace, items []string, units int64) error {
	_, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, it := range items {
			p.Set(ctx, impl.StockKey(keys, it), units, 0)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed stock: %w", err)
	}
	return nil
}

// orderConcurrency is Common.Concurrency or the order scenarios' default.
func orderConcurrency(env *Env) int {
	if env.Common.Concurrency > 0 {
		return env.Common.Concurrency
	}
	return orderDefaultConcurrency
}

// orderRunSize returns the engine's bounds for a count-driven order
// scenario: count operations, unless Common.Duration is set, which makes
// the run time-driven instead (the count is then ignored: every order id
// comes from the engine's sequence number, and the read-back finds the
// orders by SCAN, so no count is needed).
func orderRunSize(env *Env, count int64) (requests int64, d time.Duration) {
	if env.Common.Duration > 0 {
		return 0, env.Common.Duration
	}
	return count, 0
}

// orderMoney is one order's ledger, read from the item's stream.
type orderMoney struct {
	captured, refunded int64 // amounts
	captures, refunds  int64 // entries
}

// net is what the ledger holds for the order: captures minus refunds.
func (m orderMoney) net() int64 { return m.captured - m.refunded }

// orderSnapshot is the server's state of an order scenario, read back
// through the neutral client after the run.
type orderSnapshot struct {
	// orders holds every order hash under the keyspace, found by SCAN.
	orders []impl.Order
	// money holds each order's ledger entries (orders the ledger names but
	// no hash holds are counted in strayLedger).
	money       map[impl.OrderRef]orderMoney
	strayLedger int64
	// ledgerNet is captures minus refunds over the whole ledger.
	ledgerNet int64
	// ledgerEntries counts every ledger entry.
	ledgerEntries int64
	// reservations holds each item's live reservations (order id -> deadline).
	reservations map[impl.OrderRef]float64
	// stock holds each item's stock counter.
	stock map[string]int64
}

// readOrderSnapshot reads every order hash under keys (SCAN + pipelined
// HGETALL), and each item's ledger, reservations and stock.
func readOrderSnapshot(ctx context.Context, admin *redis.Client, keys impl.Keyspace, items []string) (*orderSnapshot, error) {
	s := &orderSnapshot{
		money:        map[impl.OrderRef]orderMoney{},
		reservations: map[impl.OrderRef]float64{},
		stock:        map[string]int64{},
	}
	const batch = 512
	var pending []string
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		cmds, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range pending {
				p.HGetAll(ctx, k)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read orders: %w", err)
		}
		for i, c := range cmds {
			fields, err := c.(*redis.MapStringStringCmd).Result()
			if err != nil {
				return fmt.Errorf("read order %s: %w", pending[i], err)
			}
			o, err := impl.ParseOrder(fields)
			if err != nil {
				return fmt.Errorf("order %s: %w", pending[i], err)
			}
			s.orders = append(s.orders, o)
		}
		pending = pending[:0]
		return nil
	}
	seen := map[string]bool{} // SCAN may return a key twice
	iter := admin.Scan(ctx, 0, keys.Prefix()+"order:*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if seen[k] {
			continue
		}
		seen[k] = true
		pending = append(pending, k)
		if len(pending) == batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan orders: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	known := make(map[impl.OrderRef]bool, len(s.orders))
	for _, o := range s.orders {
		known[o.Ref()] = true
	}

	for _, it := range items {
		n, err := admin.Get(ctx, impl.StockKey(keys, it)).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read stock of %s: %w", it, err)
		}
		s.stock[it] = n
		zs, err := admin.ZRangeWithScores(ctx, impl.ReservationsKey(keys, it), 0, -1).Result()
		if err != nil {
			return nil, fmt.Errorf("read reservations of %s: %w", it, err)
		}
		for _, z := range zs {
			s.reservations[impl.OrderRef{Item: it, ID: fmt.Sprint(z.Member)}] = z.Score
		}
		if err := s.readLedger(ctx, admin, impl.LedgerKey(keys, it), it, known); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readLedger pages through one item's ledger stream.
func (s *orderSnapshot) readLedger(ctx context.Context, admin *redis.Client, key, it string, known map[impl.OrderRef]bool) error {
	const page = 10_000
	start := "-"
	for {
		entries, err := admin.XRangeN(ctx, key, start, "+", page).Result()
		if err != nil {
			return fmt.Errorf("read ledger of %s: %w", it, err)
		}
		for _, e := range entries {
			ref := impl.OrderRef{Item: it, ID: fmt.Sprint(e.Values[impl.LedgerFieldOrder])}
			amount, err := strconv.ParseInt(fmt.Sprint(e.Values[impl.LedgerFieldAmount]), 10, 64)
			if err != nil {
				return fmt.Errorf("ledger entry %s of %s: amount: %w", e.ID, it, err)
			}
			m := s.money[ref]
			switch e.Values[impl.LedgerFieldKind] {
			case impl.LedgerCapture:
				m.captured += amount
				m.captures++
				s.ledgerNet += amount
			case impl.LedgerRefund:
				m.refunded += amount
				m.refunds++
				s.ledgerNet -= amount
			default:
				return fmt.Errorf("ledger entry %s of %s has kind %v", e.ID, it, e.Values[impl.LedgerFieldKind])
			}
			s.money[ref] = m
			s.ledgerEntries++
			if !known[ref] {
				s.strayLedger++
			}
		}
		if len(entries) < page {
			return nil
		}
		start = "(" + entries[len(entries)-1].ID
	}
}

// totalStock sums the items' stock counters.
func (s *orderSnapshot) totalStock() int64 {
	var n int64
	for _, v := range s.stock {
		n += v
	}
	return n
}

// byStatus counts the orders, and their units, per status.
func (s *orderSnapshot) byStatus() (count, units map[impl.OrderStatus]int64) {
	count, units = map[impl.OrderStatus]int64{}, map[impl.OrderStatus]int64{}
	for _, o := range s.orders {
		count[o.Status]++
		units[o.Status] += o.Quantity
	}
	return count, units
}

// heldUnits sums the units of orders that hold them out of stock
// (processing, paid, completed).
func (s *orderSnapshot) heldUnits() int64 {
	var n int64
	for _, o := range s.orders {
		if o.Status.HoldsUnits() {
			n += o.Quantity
		}
	}
	return n
}

// capturedAmount sums the amounts of orders whose money should be in the
// ledger (paid, completed).
func (s *orderSnapshot) capturedAmount() int64 {
	var n int64
	for _, o := range s.orders {
		if o.Status.Captured() {
			n += o.Amount
		}
	}
	return n
}

// loadOrderID is a load operation's order id: unique per call of the run.
func loadOrderID(w *bench.Worker) string {
	return "w" + strconv.Itoa(w.ID) + "-" + strconv.FormatInt(w.Seq, 10)
}

// loadOrders opens the strategy and stocks env.KeyCount items for a load
// run.
func loadOrders(ctx context.Context, env *LoadEnv, strategy string) (impl.Orders, []string, error) {
	orders, err := openOrders(env.Backend, strategy, impl.OrderOptions{Keys: env.Keys})
	if err != nil {
		return nil, nil, err
	}
	items := orderItems(max(env.KeyCount, 1))
	if err := seedOrderStock(ctx, env.Admin, env.Keys, items, orderLoadStock); err != nil {
		return nil, nil, err
	}
	return orders, items, nil
}

func setupOrderCreate(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	orders, items, err := loadOrders(ctx, env, strategy)
	if err != nil {
		return nil, err
	}
	return &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			_, _, err := orders.Create(ctx, impl.NewOrder{Item: items[env.Pick(w)], ID: loadOrderID(w), Quantity: 1, Amount: orderUnitPrice})
			return err
		},
	}, nil
}

// loadGetID is the one order per item that order.get reads.
const loadGetID = "load-get"

func setupOrderGet(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	orders, items, err := loadOrders(ctx, env, strategy)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if _, _, err := orders.Create(ctx, impl.NewOrder{Item: it, ID: loadGetID, Quantity: 1, Amount: orderUnitPrice}); err != nil {
			return nil, fmt.Errorf("seed orders: %w", err)
		}
	}
	return &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			_, err := orders.Get(ctx, impl.OrderRef{Item: items[env.Pick(w)], ID: loadGetID})
			return err
		},
	}, nil
}

func setupOrderPay(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	orders, items, err := loadOrders(ctx, env, strategy)
	if err != nil {
		return nil, err
	}
	return &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			ref := impl.OrderRef{Item: items[env.Pick(w)], ID: loadOrderID(w)}
			if _, _, err := orders.Create(ctx, impl.NewOrder{Item: ref.Item, ID: ref.ID, Quantity: 1, Amount: orderUnitPrice}); err != nil {
				return err
			}
			if _, _, err := orders.Transition(ctx, ref, impl.StatusProcessing); err != nil {
				return err
			}
			_, _, err := orders.Transition(ctx, ref, impl.StatusPaid)
			return err
		},
	}, nil
}
