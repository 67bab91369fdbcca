package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
func seedOrderStock(ctx context.Context, admin redis.UniversalClient, keys impl.Keyspace, items []string, units int64) error {
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
	// index maps an order to its place in orders.
	index map[impl.OrderRef]int
	// money holds each order's ledger entries (orders the ledger names but
	// no hash holds are counted in strayLedger).
	money       map[impl.OrderRef]orderMoney
	strayLedger int64
	// ledgerNet is captures minus refunds over the whole ledger;
	// ledgerCaptured and ledgerRefunded its two sides.
	ledgerNet, ledgerCaptured, ledgerRefunded int64
	// ledgerEntries counts every ledger entry.
	ledgerEntries int64
	// reservations holds each item's live reservations (order id -> deadline).
	reservations map[impl.OrderRef]float64
	// stock holds each item's stock counter; missingStock lists the items
	// whose counter is gone (the scenarios seed every item and the order
	// code never deletes a counter: the cell's data was lost).
	stock        map[string]int64
	missingStock []string
}

// notJudged ends the summary of a cell whose read-back failed or found
// the cell's data gone: its figures are the workers' answers only.
const notJudged = "not judged, the server's state could not be read back or was lost (the answers above are the clients')"

// snapshotAttempts bounds how often readOrderSnapshot reads the state
// again because it changed while it was being read.
const snapshotAttempts = 4

// readOrderSnapshot reads every order hash under keys (SCAN + pipelined
// HGETALL), and each item's ledger, reservations and stock. The read is
// several commands, so a command still landing — one whose reply a worker
// lost during a stall and that the server ran late — could make it
// inconsistent (an order read before its reservation, the stock after):
// each item's stock, ledger length and reservation count are read before
// and after, and the whole read is repeated until they agree. An error
// says what could not be read; the caller wraps it with JudgementError.
func readOrderSnapshot(ctx context.Context, admin redis.UniversalClient, keys impl.Keyspace, items []string) (*orderSnapshot, error) {
	for attempt := 1; ; attempt++ {
		before, err := itemFingerprint(ctx, admin, keys, items)
		if err != nil {
			return nil, err
		}
		s, err := readOrderSnapshotOnce(ctx, admin, keys, items)
		if err != nil {
			return nil, err
		}
		after, err := itemFingerprint(ctx, admin, keys, items)
		if err != nil {
			return nil, err
		}
		if before == after {
			return s, nil
		}
		if attempt == snapshotAttempts {
			return nil, fmt.Errorf("the cell's state kept changing after the run (%d reads): commands whose replies were lost were still landing", attempt)
		}
		if err := impl.Sleep(ctx, time.Duration(attempt)*50*time.Millisecond); err != nil {
			return nil, fmt.Errorf("read back: %w", err)
		}
	}
}

// itemFingerprint reads what every move of an item changes — its stock,
// ledger length and reservation count — in one pipeline.
func itemFingerprint(ctx context.Context, admin redis.UniversalClient, keys impl.Keyspace, items []string) (string, error) {
	cmds, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, it := range items {
			p.Get(ctx, impl.StockKey(keys, it))
			p.XLen(ctx, impl.LedgerKey(keys, it))
			p.ZCard(ctx, impl.ReservationsKey(keys, it))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("read stock, ledger and reservations: %w", err)
	}
	var b strings.Builder
	for _, c := range cmds {
		switch c := c.(type) {
		case *redis.StringCmd:
			v, err := c.Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return "", fmt.Errorf("read stock: %w", err)
			}
			b.WriteString(v)
		case *redis.IntCmd:
			v, err := c.Result()
			if err != nil {
				return "", fmt.Errorf("read ledger or reservations: %w", err)
			}
			b.WriteString(strconv.FormatInt(v, 10))
		}
		b.WriteByte(' ')
	}
	return b.String(), nil
}

// readOrderSnapshotOnce is one read of readOrderSnapshot.
func readOrderSnapshotOnce(ctx context.Context, admin redis.UniversalClient, keys impl.Keyspace, items []string) (*orderSnapshot, error) {
	s := &orderSnapshot{
		index:        map[impl.OrderRef]int{},
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
			if len(fields) == 0 {
				continue // gone since the SCAN
			}
			o, err := impl.ParseOrder(fields)
			if err != nil {
				return fmt.Errorf("order %s: %w", pending[i], err)
			}
			s.index[o.Ref()] = len(s.orders)
			s.orders = append(s.orders, o)
		}
		pending = pending[:0]
		return nil
	}
	seen := map[string]bool{} // SCAN may return a key twice
	all, err := scanKeys(ctx, admin, keys.Prefix()+"order:*")
	if err != nil {
		return nil, fmt.Errorf("scan orders: %w", err)
	}
	for _, k := range all {
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
	if err := flush(); err != nil {
		return nil, err
	}

	for _, it := range items {
		n, err := admin.Get(ctx, impl.StockKey(keys, it)).Int64()
		switch {
		case errors.Is(err, redis.Nil):
			s.missingStock = append(s.missingStock, it)
		case err != nil:
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
		if err := s.readLedger(ctx, admin, impl.LedgerKey(keys, it), it); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readLedger pages through one item's ledger stream.
func (s *orderSnapshot) readLedger(ctx context.Context, admin redis.UniversalClient, key, it string) error {
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
				s.ledgerCaptured += amount
			case impl.LedgerRefund:
				m.refunded += amount
				m.refunds++
				s.ledgerNet -= amount
				s.ledgerRefunded += amount
			default:
				return fmt.Errorf("ledger entry %s of %s has kind %v", e.ID, it, e.Values[impl.LedgerFieldKind])
			}
			s.money[ref] = m
			s.ledgerEntries++
			if _, known := s.index[ref]; !known {
				s.strayLedger++
			}
		}
		if len(entries) < page {
			return nil
		}
		start = "(" + entries[len(entries)-1].ID
	}
}

// lostData returns an error when the snapshot shows that the cell's data
// was lost (a seeded stock counter is gone): no figure about stock would
// mean anything.
func (s *orderSnapshot) lostData() error {
	if len(s.missingStock) == 0 {
		return nil
	}
	return fmt.Errorf("the stock of %d of %d items is gone from the server (%q first; every item was seeded and the order code never deletes a counter): the cell's data was lost — a restart without persistence, a flush — so its figures are not judged",
		len(s.missingStock), len(s.stock), s.missingStock[0])
}

// record returns what the server holds of one order.
func (s *orderSnapshot) record(ref impl.OrderRef) impl.OrderRecord {
	var r impl.OrderRecord
	if i, ok := s.index[ref]; ok {
		r.Order, r.Found = s.orders[i], true
	}
	m := s.money[ref]
	r.Captures, r.Captured, r.Refunds, r.Refunded = m.captures, m.captured, m.refunds, m.refunded
	return r
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

// Unknown outcomes. A call that fails with a class that may have applied
// (impl.MayHaveApplied: a time-out, a dropped connection) lost its reply:
// the worker notes the order and the move, in memory only (the timed
// operation calls nothing but the backend under test), and after the run
// the scenario reads the server's record of each move back
// (impl.OrderRecord.Recorded) and judges with what it finds.

// orderNoteCap is how many notes each worker's buffers hold before the
// run; a worker that fails more often appends beyond, allocating only on
// that failure path.
const orderNoteCap = 64

// lostMove notes a move whose call lost its reply.
type lostMove struct {
	ref  impl.OrderRef
	move impl.OrderMove
	// calls is how many calls of the move on the order, in one operation,
	// lost their reply (several for duplicate-order's copies).
	calls int64
	// answered is how many calls of the same move on the same order, in
	// the same operation, were answered as having made it (a "new order",
	// an applied transition). A move happens once per order: when one was
	// answered so, none of the lost calls made it.
	answered int64
}

// touchedOrder is an order whose operation had a failed call, so its flow
// may have stopped short.
type touchedOrder struct {
	ref impl.OrderRef
	// reached is true when an answer showed the order in processing
	// (duplicate-order: a reservation applied or already there).
	reached bool
}

// orderNotes is one worker's notes of its failed calls, on its own cache
// line.
type orderNotes struct {
	lost    []lostMove
	touched []touchedOrder
	// failed counts the calls that failed for sure (their class says they
	// did not apply: OOM, NOPERM, ...).
	failed int64
	// settleable counts, by class, the failed operations all of whose
	// failed calls lost their reply, on a strategy that records its moves
	// atomically: the read-back finds out what became of each.
	settleable map[string]int64
	_          [64]byte
}

// newOrderNotes returns the pre-sized notes of n workers.
func newOrderNotes(n int) []orderNotes {
	notes := make([]orderNotes, n)
	for i := range notes {
		notes[i].lost = make([]lostMove, 0, orderNoteCap)
		notes[i].touched = make([]touchedOrder, 0, orderNoteCap)
		notes[i].settleable = make(map[string]int64, 4)
	}
	return notes
}

// opFailure gathers the failed calls of one operation.
type opFailure struct {
	classify func(error) string
	notes    *orderNotes
	err      error  // what the operation returns
	class    string // err's class
	sure     bool   // a call failed for sure
}

// newOpFailure starts an operation's record of failures; classify is the
// backend's (the engine classifies the returned error with it too).
func newOpFailure(classify func(error) string, notes *orderNotes) opFailure {
	if classify == nil {
		classify = impl.Classify
	}
	return opFailure{classify: classify, notes: notes}
}

// fail records a failed call of move on ref and reports whether its
// outcome is unknown; a lost reply is noted for the settlement.
func (f *opFailure) fail(err error, ref impl.OrderRef, move impl.OrderMove) bool {
	unknown := f.record(err)
	if unknown {
		f.noteLost(ref, move, 1, 0)
	}
	return unknown
}

// record records a failed call without noting its move (the caller notes
// copies of one move together) and reports whether its outcome is
// unknown. A call that failed for sure becomes the operation's error, so
// that the engine counts the operation under a class that never settles.
func (f *opFailure) record(err error) bool {
	class := f.classify(err)
	unknown := impl.MayHaveApplied(class) && !orderAnswer(err)
	if f.err == nil || (!unknown && !f.sure) {
		f.err, f.class = err, class
	}
	if !unknown {
		f.sure = true
		f.notes.failed++
	}
	return unknown
}

// orderAnswer reports whether err is the order family's own answer — the
// server replied, and nothing applied — rather than a failure whose
// outcome is unknown: an illegal move, no stock, an id conflict, no such
// order. A scenario that did not expect the answer counts it as a failed
// call (the engine classes it "other"), but never as a lost reply.
func orderAnswer(err error) bool {
	return errors.Is(err, impl.ErrIllegalTransition) || errors.Is(err, impl.ErrOutOfStock) ||
		errors.Is(err, impl.ErrOrderConflict) || errors.Is(err, impl.ErrOrderNotFound)
}

// noteLost notes calls lost replies of move on ref.
func (f *opFailure) noteLost(ref impl.OrderRef, move impl.OrderMove, calls, answered int64) {
	f.notes.lost = append(f.notes.lost, lostMove{ref: ref, move: move, calls: calls, answered: answered})
}

// end closes the operation on ref and returns its error: the order is
// noted as touched, and the operation as settleable when every failure
// lost its reply and settles is true (the strategy records its moves
// atomically).
func (f *opFailure) end(ref impl.OrderRef, reached, settles bool) error {
	if f.err == nil {
		return nil
	}
	f.notes.touched = append(f.notes.touched, touchedOrder{ref: ref, reached: reached})
	if settles && !f.sure {
		f.notes.settleable[f.class]++
	}
	return f.err
}

// settlement is what the read-back found of the workers' failed calls.
type settlement struct {
	// settles is true for a strategy whose moves the server records
	// atomically (safe); a naive move is several commands, any of which
	// may have applied, so its lost replies stay unknown.
	settles bool
	// lost counts the calls whose reply was lost; happened how many of
	// their moves the server records (safe only).
	lost, happened int64
	// byMove holds lost and happened per move.
	byMove map[impl.OrderMove][2]int64
	// failed counts the calls that failed for sure.
	failed int64
	// ops counts the failed operations settled (result.Cell.Settled).
	ops int64
	// touched holds the orders whose operation had a failed call, and
	// whether an answer showed the order in processing.
	touched map[impl.OrderRef]bool
}

// settle reads each lost reply's move back from snap. A lost call made
// its move when the server records the move and no call of the same move
// on the order was answered as having made it; when several copies lost
// their reply, one of them made it. Settled operations are capped, class
// by class, at the failures the engine counted (a call failed by the end
// of a timed run is not counted), and cancellations — the run's own stop —
// never count.
func settle(snap *orderSnapshot, notes []orderNotes, settles bool, stats *bench.Stats) settlement {
	st := settlement{settles: settles, byMove: map[impl.OrderMove][2]int64{}, touched: map[impl.OrderRef]bool{}}
	settleable := map[string]int64{}
	for i := range notes {
		n := &notes[i]
		st.failed += n.failed
		for _, t := range n.touched {
			st.touched[t.ref] = st.touched[t.ref] || t.reached
		}
		for class, k := range n.settleable {
			settleable[class] += k
		}
		for _, l := range n.lost {
			var happened int64
			if settles && l.answered == 0 && snap.record(l.ref).Recorded(l.move) {
				happened = 1
			}
			st.lost += l.calls
			st.happened += happened
			bm := st.byMove[l.move]
			st.byMove[l.move] = [2]int64{bm[0] + l.calls, bm[1] + happened}
		}
	}
	if settles && stats != nil {
		for class, k := range settleable {
			if class != impl.ClassCanceled && impl.MayHaveApplied(class) {
				st.ops += min(k, stats.Errors[class])
			}
		}
	}
	return st
}

// figures adds the settlement's figures.
func (st settlement) figures(f map[string]float64) {
	f["replies_lost"] = float64(st.lost)
	f["calls_failed"] = float64(st.failed)
	if st.settles {
		f["lost_moves_happened"] = float64(st.happened)
		f["settled_operations"] = float64(st.ops)
	}
	for m, v := range st.byMove {
		f["lost_"+string(m)] = float64(v[0])
		if st.settles {
			f["lost_"+string(m)+"_happened"] = float64(v[1])
		}
	}
}

// line says what became of the failed calls, for a summary ("" when none
// failed).
func (st settlement) line() string {
	var parts []string
	switch {
	case st.lost == 0:
	case st.settles:
		parts = append(parts, fmt.Sprintf("%d replies lost, %d of those moves had happened", st.lost, st.happened))
	default:
		parts = append(parts, fmt.Sprintf("%d replies lost, not settled (a naive move is several commands, any of which may have applied)", st.lost))
	}
	if st.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d calls refused by the server (not applied)", st.failed))
	}
	return strings.Join(parts, "; ")
}

// rel renders the relation of a and b for a summary: "==" or "≠", so
// that a summary states an equality only when it holds.
func rel(a, b int64) string { return eqSign(a == b) }

// eqSign is "==" when an equality holds, else "≠".
func eqSign(holds bool) string {
	if holds {
		return "=="
	}
	return "≠"
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
