package impltest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// orderTimeout bounds every Redis call an order test makes.
const orderTimeout = 30 * time.Second

// The order tests' defaults.
const (
	orderQty    = 2
	orderAmount = 1999
	orderStock  = 100
)

// orderOddIDs are item and order ids a careless key schema would break on.
var orderOddIDs = []string{"", "{", "}", "{}", "a{b}c", ":", "a:b", "%", "%25", " ", "日本", "\x00\n", strings.Repeat("x", 300)}

// orderCase is what each order test receives.
type orderCase struct {
	env      Env
	open     impl.Opener
	backend  impl.Backend
	strategy string
}

// orders returns a fresh keyspace and the case's strategy on it, with the
// suite's options changed by opt. The naive strategy deducts with the lua
// stock strategy unless opt says otherwise, so that the tests see the
// order code's behaviour and not reduce_stock's races.
func (c orderCase) orders(t *testing.T, opt func(*impl.OrderOptions)) (impl.Orders, impl.Keyspace) {
	t.Helper()
	ks := c.env.Keyspace(t)
	o := impl.OrderOptions{Keys: ks, NaiveStock: impl.StockLua}
	if opt != nil {
		opt(&o)
	}
	s, err := c.backend.(impl.OrderBackend).Orders(c.strategy, o)
	if err != nil {
		t.Fatalf("Orders(%q): %v", c.strategy, err)
	}
	return s, ks
}

// orderTest is one conformance test; only lists the strategies it applies
// to (nil: all).
type orderTest struct {
	name string
	only []string
	run  func(t *testing.T, c orderCase)
}

var orderTests = []orderTest{
	{name: "CreateAndGet", run: testOrderCreateAndGet},
	{name: "NotFound", run: testOrderNotFound},
	{name: "InvalidInput", run: testOrderInvalidInput},
	{name: "OddIDs", run: testOrderOddIDs},
	{name: "IdempotentCreate", only: []string{impl.OrderSafe}, run: testOrderIdempotentCreate},
	{name: "ConcurrentCreate", only: []string{impl.OrderSafe}, run: testOrderConcurrentCreate},
	{name: "Transitions", only: []string{impl.OrderSafe}, run: testOrderTransitions},
	{name: "OutOfStock", only: []string{impl.OrderSafe}, run: testOrderOutOfStock},
	{name: "ReservationExpires", only: []string{impl.OrderSafe}, run: testOrderReservationExpires},
	{name: "AvailableReleasesOverdue", only: []string{impl.OrderSafe}, run: testOrderAvailableReleases},
	{name: "ReserveReclaimsOverdue", only: []string{impl.OrderSafe}, run: testOrderReserveReclaims},
	{name: "PayCancelRace", only: []string{impl.OrderSafe}, run: testOrderPayCancelRace},
	{name: "MovesLeaveRecords", only: []string{impl.OrderSafe}, run: testOrderMovesLeaveRecords},
	{name: "ScriptFlush", only: []string{impl.OrderSafe}, run: testOrderScriptFlush},
	{name: "NaiveOverwrites", only: []string{impl.OrderNaive}, run: testOrderNaiveOverwrites},
	{name: "NaiveUnchecked", only: []string{impl.OrderNaive}, run: testOrderNaiveUnchecked},
}

// RunOrders runs the order conformance suite: for every strategy of
// impl.OrderStrategies, every test that applies to it, against env, with a
// backend that open connects (one per strategy, closed at the end).
func RunOrders(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	t.Run("Strategies", func(t *testing.T) { testOrderStrategies(t, env, open) })
	t.Run("StateMachine", testOrderStateMachine)
	for _, strategy := range impl.OrderStrategies() {
		t.Run(strategy, func(t *testing.T) {
			b := orderBackend(t, env, open)
			c := orderCase{env: env, open: open, backend: b, strategy: strategy}
			for _, tt := range orderTests {
				if tt.only != nil && !slices.Contains(tt.only, strategy) {
					continue
				}
				t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
			}
		})
	}
}

func orderBackend(t *testing.T, env Env, open impl.Opener) impl.Backend {
	t.Helper()
	b, err := open(orderContext(t), env.Conn)
	if err != nil {
		t.Fatalf("open backend on %s: %v", env.Name, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close backend: %v", err)
		}
	})
	if _, ok := b.(impl.OrderBackend); !ok {
		t.Fatalf("%T does not implement impl.OrderBackend", b)
	}
	return b
}

func orderContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), orderTimeout)
	t.Cleanup(cancel)
	return ctx
}

func testOrderStrategies(t *testing.T, env Env, open impl.Opener) {
	ob := orderBackend(t, env, open).(impl.OrderBackend)
	ks := env.Keyspace(t)
	for _, name := range impl.OrderStrategies() {
		if _, err := ob.Orders(name, impl.OrderOptions{Keys: ks}); err != nil {
			t.Errorf("Orders(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "SAFE", "safe ", "lua"} {
		if _, err := ob.Orders(name, impl.OrderOptions{Keys: ks}); !errors.Is(err, impl.ErrUnknownStrategy) {
			t.Errorf("Orders(%q) error = %v, want ErrUnknownStrategy", name, err)
		}
	}
	if _, err := ob.Orders(impl.OrderSafe, impl.OrderOptions{}); err == nil {
		t.Errorf("Orders without Keys: no error")
	}
	if _, err := ob.Orders(impl.OrderNaive, impl.OrderOptions{Keys: ks, NaiveStock: "nope"}); !errors.Is(err, impl.ErrUnknownStrategy) {
		t.Errorf("Orders(naive, NaiveStock nope) error = %v, want ErrUnknownStrategy", err)
	}
}

// legalMoves is the state machine written out once more, independently of
// impl.CanTransition, so that a change to either is caught.
var legalMoves = map[[2]impl.OrderStatus]bool{
	{impl.StatusCreated, impl.StatusProcessing}:   true,
	{impl.StatusCreated, impl.StatusCancelled}:    true,
	{impl.StatusProcessing, impl.StatusPaid}:      true,
	{impl.StatusProcessing, impl.StatusCancelled}: true,
	{impl.StatusPaid, impl.StatusCompleted}:       true,
	{impl.StatusPaid, impl.StatusRefunded}:        true,
}

func testOrderStateMachine(t *testing.T) {
	for _, from := range impl.OrderStatuses() {
		for _, to := range impl.OrderStatuses() {
			if got, want := impl.CanTransition(from, to), legalMoves[[2]impl.OrderStatus{from, to}]; got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
		if got, want := from.Terminal(), from == impl.StatusCompleted || from == impl.StatusCancelled || from == impl.StatusRefunded; got != want {
			t.Errorf("%s.Terminal() = %v, want %v", from, got, want)
		}
	}
	if impl.OrderStatus("bogus").Valid() || impl.OrderStatus("").Valid() {
		t.Errorf("an unknown status is Valid")
	}
}

// newOrder is the suite's order number i of item.
func newOrder(item, id string) impl.NewOrder {
	return impl.NewOrder{Item: item, ID: id, Quantity: orderQty, Amount: orderAmount}
}

// orderState is an order's state read back through the neutral client.
type orderState struct {
	fields      map[string]string
	stock       int64
	reserved    bool    // the order id is in the item's reservations
	deadline    float64 // its score
	ledger      []map[string]any
	ledgerTotal int64 // captures minus refunds of this order
}

func readOrderState(t *testing.T, ctx context.Context, admin redis.UniversalClient, ks impl.Keyspace, ref impl.OrderRef) orderState {
	t.Helper()
	var st orderState
	var err error
	if st.fields, err = admin.HGetAll(ctx, impl.OrderKey(ks, ref)).Result(); err != nil {
		t.Fatalf("HGETALL order: %v", err)
	}
	st.stock, err = admin.Get(ctx, impl.StockKey(ks, ref.Item)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("GET stock: %v", err)
	}
	score, err := admin.ZScore(ctx, impl.ReservationsKey(ks, ref.Item), ref.ID).Result()
	switch {
	case err == nil:
		st.reserved, st.deadline = true, score
	case !errors.Is(err, redis.Nil):
		t.Fatalf("ZSCORE reservation: %v", err)
	}
	entries, err := admin.XRange(ctx, impl.LedgerKey(ks, ref.Item), "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE ledger: %v", err)
	}
	for _, e := range entries {
		if e.Values[impl.LedgerFieldOrder] != ref.ID {
			continue
		}
		st.ledger = append(st.ledger, e.Values)
		amount, err := strconv.ParseInt(fmt.Sprint(e.Values[impl.LedgerFieldAmount]), 10, 64)
		if err != nil {
			t.Fatalf("ledger entry %v: %v", e.Values, err)
		}
		switch e.Values[impl.LedgerFieldKind] {
		case impl.LedgerCapture:
			st.ledgerTotal += amount
		case impl.LedgerRefund:
			st.ledgerTotal -= amount
		default:
			t.Fatalf("ledger entry of unknown kind: %v", e.Values)
		}
	}
	return st
}

func setStock(t *testing.T, ctx context.Context, admin redis.UniversalClient, ks impl.Keyspace, item string, units int64) {
	t.Helper()
	if err := admin.Set(ctx, impl.StockKey(ks, item), units, 0).Err(); err != nil {
		t.Fatalf("SET stock: %v", err)
	}
}

func mustCreate(t *testing.T, ctx context.Context, s impl.Orders, n impl.NewOrder) impl.Order {
	t.Helper()
	o, created, err := s.Create(ctx, n)
	if err != nil || !created {
		t.Fatalf("Create(%s) = created %v, %v; want a new order", n.Ref(), created, err)
	}
	return o
}

func mustMove(t *testing.T, ctx context.Context, s impl.Orders, ref impl.OrderRef, to ...impl.OrderStatus) {
	t.Helper()
	for _, st := range to {
		o, applied, err := s.Transition(ctx, ref, st)
		if err != nil || !applied || o.Status != st {
			t.Fatalf("Transition(%s, %s) = %s applied %v, %v; want applied", ref, st, o.Status, applied, err)
		}
	}
}

// pathTo is how the suite brings a created order to each status.
var pathTo = map[impl.OrderStatus][]impl.OrderStatus{
	impl.StatusCreated:    nil,
	impl.StatusProcessing: {impl.StatusProcessing},
	impl.StatusPaid:       {impl.StatusProcessing, impl.StatusPaid},
	impl.StatusCompleted:  {impl.StatusProcessing, impl.StatusPaid, impl.StatusCompleted},
	impl.StatusCancelled:  {impl.StatusCancelled},
	impl.StatusRefunded:   {impl.StatusProcessing, impl.StatusPaid, impl.StatusRefunded},
}

func testOrderCreateAndGet(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	before := time.Now().Add(-time.Minute)
	n := newOrder("sku", "o-1")
	o := mustCreate(t, ctx, s, n)
	if o.Ref() != n.Ref() || o.Quantity != orderQty || o.Amount != orderAmount || o.Status != impl.StatusCreated {
		t.Errorf("Create returned %+v", o)
	}
	if o.Created.Before(before) || o.Created.After(time.Now().Add(time.Minute)) {
		t.Errorf("Created = %v, want about now", o.Created)
	}
	got, err := s.Get(ctx, n.Ref())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got != o {
		t.Errorf("Get = %+v, want %+v", got, o)
	}
	st := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
	raw, err := impl.ParseOrder(st.fields)
	if err != nil || raw != o {
		t.Errorf("stored order = %+v, %v; want %+v", raw, err, o)
	}
	if st.reserved || len(st.ledger) != 0 || st.stock != 0 {
		t.Errorf("create had side effects: %+v", st)
	}
}

func testOrderNotFound(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	ref := impl.OrderRef{Item: "sku", ID: "never"}
	if _, err := s.Get(ctx, ref); !errors.Is(err, impl.ErrOrderNotFound) {
		t.Errorf("Get(unknown) error = %v, want ErrOrderNotFound", err)
	}
	if _, _, err := s.Transition(ctx, ref, impl.StatusPaid); !errors.Is(err, impl.ErrOrderNotFound) {
		t.Errorf("Transition(unknown) error = %v, want ErrOrderNotFound", err)
	}
	if n := scanOrderKeys(t, ctx, c.env.Admin, ks); len(n) != 0 {
		t.Errorf("a missing order left keys behind: %q", n)
	}
}

func testOrderInvalidInput(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	long := strings.Repeat("x", impl.MaxOrderID+1)
	for _, tc := range []struct {
		name string
		n    impl.NewOrder
		want error
	}{
		{"zero quantity", impl.NewOrder{Item: "i", ID: "a", Quantity: 0, Amount: 1}, impl.ErrInvalidQuantity},
		{"negative quantity", impl.NewOrder{Item: "i", ID: "a", Quantity: -1, Amount: 1}, impl.ErrInvalidQuantity},
		{"huge quantity", impl.NewOrder{Item: "i", ID: "a", Quantity: impl.MaxQuantity + 1, Amount: 1}, impl.ErrInvalidQuantity},
		{"negative amount", impl.NewOrder{Item: "i", ID: "a", Quantity: 1, Amount: -1}, impl.ErrInvalidAmount},
		{"huge amount", impl.NewOrder{Item: "i", ID: "a", Quantity: 1, Amount: impl.MaxAmount + 1}, impl.ErrInvalidAmount},
		{"long id", impl.NewOrder{Item: "i", ID: long, Quantity: 1, Amount: 1}, impl.ErrInvalidID},
		{"long item", impl.NewOrder{Item: long, ID: "a", Quantity: 1, Amount: 1}, impl.ErrInvalidID},
	} {
		if _, _, err := s.Create(ctx, tc.n); !errors.Is(err, tc.want) {
			t.Errorf("Create(%s) error = %v, want %v", tc.name, err, tc.want)
		}
	}
	mustCreate(t, ctx, s, newOrder("i", "a"))
	for _, to := range []impl.OrderStatus{"", "bogus", "PAID"} {
		if _, _, err := s.Transition(ctx, impl.OrderRef{Item: "i", ID: "a"}, to); !errors.Is(err, impl.ErrIllegalTransition) {
			t.Errorf("Transition to %q error = %v, want ErrIllegalTransition", to, err)
		}
	}
	if _, err := s.Get(ctx, impl.OrderRef{Item: "i", ID: long}); !errors.Is(err, impl.ErrInvalidID) {
		t.Errorf("Get(long id) error = %v, want ErrInvalidID", err)
	}
	if keys := scanOrderKeys(t, ctx, c.env.Admin, ks); len(keys) != 1 {
		t.Errorf("keys after invalid calls: %q, want the one valid order", keys)
	}
	// Zero and MaxAmount are valid amounts; MaxQuantity a valid quantity.
	for i, n := range []impl.NewOrder{
		{Item: "i", ID: "zero", Quantity: 1, Amount: 0},
		{Item: "i", ID: "max", Quantity: impl.MaxQuantity, Amount: impl.MaxAmount},
	} {
		o := mustCreate(t, ctx, s, n)
		if o.Amount != n.Amount || o.Quantity != n.Quantity {
			t.Errorf("order %d = %+v, want %+v", i, o, n)
		}
	}
}

func testOrderOddIDs(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	for _, item := range orderOddIDs {
		setStock(t, ctx, c.env.Admin, ks, item, orderStock)
	}
	for i, item := range orderOddIDs {
		for j, id := range orderOddIDs {
			n := impl.NewOrder{Item: item, ID: id, Quantity: 1, Amount: int64(100*i + j)}
			mustCreate(t, ctx, s, n)
			mustMove(t, ctx, s, n.Ref(), impl.StatusProcessing, impl.StatusPaid)
		}
	}
	for i, item := range orderOddIDs { // distinct ids never share a key
		for j, id := range orderOddIDs {
			ref := impl.OrderRef{Item: item, ID: id}
			o, err := s.Get(ctx, ref)
			if err != nil || o.Ref() != ref || o.Amount != int64(100*i+j) || o.Status != impl.StatusPaid {
				t.Errorf("Get(%s) = %+v, %v", ref, o, err)
			}
			st := readOrderState(t, ctx, c.env.Admin, ks, ref)
			if st.ledgerTotal != int64(100*i+j) || len(st.ledger) != 1 {
				t.Errorf("%s: ledger %v, want one capture of %d", ref, st.ledger, 100*i+j)
			}
		}
		if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, item)).Int64(); got != orderStock-int64(len(orderOddIDs)) {
			t.Errorf("item %q: stock %d, want %d", item, got, orderStock-len(orderOddIDs))
		}
		// Every key of one item shares its hash tag, so one script may
		// touch them all on Redis Cluster.
		tag := clusterHashTag(impl.StockKey(ks, item))
		for _, k := range []string{
			impl.OrderKey(ks, impl.OrderRef{Item: item, ID: "x"}),
			impl.OrderKey(ks, impl.OrderRef{Item: item, ID: "{"}),
			impl.ReservationsKey(ks, item),
			impl.LedgerKey(ks, item),
		} {
			if got := clusterHashTag(k); got != tag || got == k {
				t.Errorf("key %q hashes on %q, want the item's tag %q", k, got, tag)
			}
		}
	}
	// Every key is under the prefix, and there are exactly the expected ones.
	var want []string
	for _, item := range orderOddIDs {
		want = append(want, impl.StockKey(ks, item), impl.LedgerKey(ks, item))
		for _, id := range orderOddIDs {
			want = append(want, impl.OrderKey(ks, impl.OrderRef{Item: item, ID: id}))
		}
	}
	slices.Sort(want)
	if got := scanOrderKeys(t, ctx, c.env.Admin, ks); !slices.Equal(got, want) {
		t.Errorf("keys under %q: got %d, want %d:\n got %q\nwant %q", ks.Prefix(), len(got), len(want), got, want)
	}
}

// clusterHashTag returns the part of key Redis Cluster hashes: the
// content of the first {...} when it is non-empty, else the whole key.
func clusterHashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func scanOrderKeys(t *testing.T, ctx context.Context, admin redis.UniversalClient, ks impl.Keyspace) []string {
	t.Helper()
	return scanKeys(t, ctx, admin, ks)
}

func testOrderIdempotentCreate(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
	n := newOrder("sku", "retry")
	first := mustCreate(t, ctx, s, n)
	for _, status := range []impl.OrderStatus{impl.StatusCreated, impl.StatusProcessing, impl.StatusPaid} {
		if status != impl.StatusCreated {
			mustMove(t, ctx, s, n.Ref(), status)
		}
		before := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
		o, created, err := s.Create(ctx, n)
		if err != nil || created {
			t.Fatalf("retried Create in %s = created %v, %v; want the existing order", status, created, err)
		}
		if o.Status != status || o.Created != first.Created || o.Ref() != n.Ref() {
			t.Errorf("retried Create in %s returned %+v", status, o)
		}
		after := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("retried Create changed the server:\nbefore %+v\nafter  %+v", before, after)
		}
	}
	// The same id with different contents is a conflict, not a new order.
	for _, bad := range []impl.NewOrder{
		{Item: n.Item, ID: n.ID, Quantity: n.Quantity + 1, Amount: n.Amount},
		{Item: n.Item, ID: n.ID, Quantity: n.Quantity, Amount: n.Amount + 1},
	} {
		o, created, err := s.Create(ctx, bad)
		if !errors.Is(err, impl.ErrOrderConflict) || created {
			t.Errorf("Create(%+v) = created %v, %v; want ErrOrderConflict", bad, created, err)
		}
		if o.Quantity != n.Quantity || o.Amount != n.Amount {
			t.Errorf("conflicting Create returned %+v, want the stored order", o)
		}
	}
	// The same id under another item is another order.
	mustCreate(t, ctx, s, newOrder("other", n.ID))
	if st := readOrderState(t, ctx, c.env.Admin, ks, n.Ref()); st.stock != orderStock-orderQty || st.ledgerTotal != orderAmount {
		t.Errorf("after retries: stock %d ledger %d, want %d and %d", st.stock, st.ledgerTotal, orderStock-orderQty, orderAmount)
	}
}

func testOrderConcurrentCreate(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
	const orders, tries = 20, 8
	var created, reserved atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, orders*tries)
	start := make(chan struct{})
	for i := range orders {
		n := newOrder("sku", "o-"+strconv.Itoa(i))
		for range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, isNew, err := s.Create(ctx, n)
				if err != nil {
					errs <- err
					return
				}
				if isNew {
					created.Add(1)
				}
				_, applied, err := s.Transition(ctx, n.Ref(), impl.StatusProcessing)
				if err != nil {
					errs <- err
					return
				}
				if applied {
					reserved.Add(1)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent submission: %v", err)
	}
	if created.Load() != orders || reserved.Load() != orders {
		t.Errorf("%d creates and %d reservations answered new, want %d each", created.Load(), reserved.Load(), orders)
	}
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != orderStock-orders*orderQty {
		t.Errorf("stock %d, want %d (one deduction per order)", got, orderStock-orders*orderQty)
	}
	if n, _ := c.env.Admin.ZCard(ctx, impl.ReservationsKey(ks, "sku")).Result(); n != orders {
		t.Errorf("%d reservations, want %d", n, orders)
	}
}

// moveEffect is what a legal move does to stock, the reservation and the
// ledger.
type moveEffect struct {
	stock    int64 // change of the item's stock
	reserved bool  // reservation present afterwards
	ledger   int64 // change of the order's ledger total
	entries  int   // ledger entries added
}

var moveEffects = map[[2]impl.OrderStatus]moveEffect{
	{impl.StatusCreated, impl.StatusProcessing}:   {stock: -orderQty, reserved: true},
	{impl.StatusCreated, impl.StatusCancelled}:    {},
	{impl.StatusProcessing, impl.StatusPaid}:      {ledger: orderAmount, entries: 1},
	{impl.StatusProcessing, impl.StatusCancelled}: {stock: orderQty},
	{impl.StatusPaid, impl.StatusCompleted}:       {},
	{impl.StatusPaid, impl.StatusRefunded}:        {stock: orderQty, ledger: -orderAmount, entries: 1},
}

func testOrderTransitions(t *testing.T, c orderCase) {
	for _, from := range impl.OrderStatuses() {
		for _, to := range impl.OrderStatuses() {
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				ctx := orderContext(t)
				s, ks := c.orders(t, nil)
				setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
				n := newOrder("sku", "o")
				mustCreate(t, ctx, s, n)
				mustMove(t, ctx, s, n.Ref(), pathTo[from]...)
				before := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
				o, applied, err := s.Transition(ctx, n.Ref(), to)
				after := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
				move := [2]impl.OrderStatus{from, to}
				switch {
				case from == to:
					if err != nil || applied || o.Status != from {
						t.Fatalf("repeated move = %s applied %v, %v; want already done", o.Status, applied, err)
					}
					if fmt.Sprint(before) != fmt.Sprint(after) {
						t.Errorf("repeated move changed the server:\nbefore %+v\nafter  %+v", before, after)
					}
				case legalMoves[move]:
					if err != nil || !applied || o.Status != to {
						t.Fatalf("legal move = %s applied %v, %v; want applied", o.Status, applied, err)
					}
					want := moveEffects[move]
					if after.fields[impl.OrderFieldStatus] != string(to) {
						t.Errorf("stored status %q, want %q", after.fields[impl.OrderFieldStatus], to)
					}
					if d := after.stock - before.stock; d != want.stock {
						t.Errorf("stock changed by %d, want %d", d, want.stock)
					}
					if after.reserved != want.reserved {
						t.Errorf("reservation present %v, want %v", after.reserved, want.reserved)
					}
					if d := after.ledgerTotal - before.ledgerTotal; d != want.ledger || len(after.ledger)-len(before.ledger) != want.entries {
						t.Errorf("ledger changed by %d in %d entries, want %d in %d", d, len(after.ledger)-len(before.ledger), want.ledger, want.entries)
					}
					if to == impl.StatusProcessing {
						if o.ReservedUntil.Before(time.Now().Add(impl.DefaultReservationTTL-time.Minute)) ||
							int64(after.deadline) != o.ReservedUntil.UnixMilli() {
							t.Errorf("ReservedUntil %v, stored deadline %v", o.ReservedUntil, after.deadline)
						}
					}
					if to == impl.StatusCancelled && o.CancelReason != impl.CancelRequested {
						t.Errorf("CancelReason %q, want %q", o.CancelReason, impl.CancelRequested)
					}
				default:
					var te *impl.TransitionError
					if !errors.As(err, &te) || !errors.Is(err, impl.ErrIllegalTransition) || applied {
						t.Fatalf("illegal move: applied %v, error %v; want a *TransitionError", applied, err)
					}
					if te.From != from || te.To != to || te.Order != n.Ref() || te.Expired || errors.Is(err, impl.ErrReservationExpired) {
						t.Errorf("TransitionError %+v, want from %s to %s", te, from, to)
					}
					if o.Status != from {
						t.Errorf("refused move returned status %s, want %s", o.Status, from)
					}
					if fmt.Sprint(before) != fmt.Sprint(after) {
						t.Errorf("refused move changed the server:\nbefore %+v\nafter  %+v", before, after)
					}
				}
			})
		}
	}
}

func testOrderOutOfStock(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	setStock(t, ctx, c.env.Admin, ks, "sku", orderQty-1)
	n := newOrder("sku", "o")
	mustCreate(t, ctx, s, n)
	o, applied, err := s.Transition(ctx, n.Ref(), impl.StatusProcessing)
	if !errors.Is(err, impl.ErrOutOfStock) || applied || o.Status != impl.StatusCreated {
		t.Fatalf("reserve beyond stock = %s applied %v, %v; want ErrOutOfStock", o.Status, applied, err)
	}
	st := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
	if st.stock != orderQty-1 || st.reserved || st.fields[impl.OrderFieldStatus] != string(impl.StatusCreated) {
		t.Errorf("refused reservation changed the server: %+v", st)
	}
	// An item never stocked has none.
	m := newOrder("unstocked", "o")
	mustCreate(t, ctx, s, m)
	if _, _, err := s.Transition(ctx, m.Ref(), impl.StatusProcessing); !errors.Is(err, impl.ErrOutOfStock) {
		t.Errorf("reserve of an unstocked item: %v, want ErrOutOfStock", err)
	}
	// The order may still be cancelled.
	mustMove(t, ctx, s, n.Ref(), impl.StatusCancelled)
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != orderQty-1 {
		t.Errorf("stock after cancelling an unreserved order: %d, want %d", got, orderQty-1)
	}
}

// shortTTL is the reservation TTL of the expiry tests, and expiryWait how
// long they wait for it to pass.
const (
	shortTTL   = 30 * time.Millisecond
	expiryWait = 80 * time.Millisecond
)

func testOrderReservationExpires(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, func(o *impl.OrderOptions) { o.ReservationTTL = shortTTL })
	setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
	pay, get := newOrder("sku", "pay-late"), newOrder("sku", "read-late")
	for _, n := range []impl.NewOrder{pay, get} {
		mustCreate(t, ctx, s, n)
		mustMove(t, ctx, s, n.Ref(), impl.StatusProcessing)
	}
	time.Sleep(expiryWait)

	// Paying after the deadline is refused, and the same call returns
	// the units.
	o, applied, err := s.Transition(ctx, pay.Ref(), impl.StatusPaid)
	var te *impl.TransitionError
	if !errors.Is(err, impl.ErrReservationExpired) || !errors.Is(err, impl.ErrIllegalTransition) || !errors.As(err, &te) || !te.Expired || applied {
		t.Fatalf("late pay: applied %v, %v; want ErrReservationExpired", applied, err)
	}
	if o.Status != impl.StatusCancelled || o.CancelReason != impl.CancelExpired {
		t.Errorf("late pay returned %s (%s), want cancelled (expired)", o.Status, o.CancelReason)
	}
	st := readOrderState(t, ctx, c.env.Admin, ks, pay.Ref())
	if st.reserved || st.ledgerTotal != 0 || st.stock != orderStock-orderQty {
		t.Errorf("after the late pay: %+v; want no reservation, no capture, stock %d", st, orderStock-orderQty)
	}
	// Reading an overdue order returns its units too.
	o, err = s.Get(ctx, get.Ref())
	if err != nil || o.Status != impl.StatusCancelled || o.CancelReason != impl.CancelExpired {
		t.Errorf("Get(overdue) = %+v, %v; want cancelled (expired)", o, err)
	}
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != orderStock {
		t.Errorf("stock %d after both expired, want %d", got, orderStock)
	}
	// Cancelling an expired order is already done; paying it stays illegal.
	if o, applied, err := s.Transition(ctx, pay.Ref(), impl.StatusCancelled); err != nil || applied || o.Status != impl.StatusCancelled {
		t.Errorf("cancel after expiry = %s applied %v, %v; want already cancelled", o.Status, applied, err)
	}
	if _, _, err := s.Transition(ctx, pay.Ref(), impl.StatusPaid); !errors.Is(err, impl.ErrIllegalTransition) || errors.Is(err, impl.ErrReservationExpired) {
		t.Errorf("second late pay: %v, want a plain illegal transition", err)
	}
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != orderStock {
		t.Errorf("stock %d, want %d (units returned once)", got, orderStock)
	}
	// A reservation paid in time is a sale for good.
	live, err := c.backend.(impl.OrderBackend).Orders(c.strategy, impl.OrderOptions{Keys: ks, ReservationTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	n := newOrder("sku", "in-time")
	mustCreate(t, ctx, live, n)
	mustMove(t, ctx, live, n.Ref(), impl.StatusProcessing, impl.StatusPaid)
	time.Sleep(expiryWait)
	if a, err := s.Available(ctx, "sku"); err != nil || a.Units != orderStock-orderQty || a.Released != 0 {
		t.Errorf("Available after a paid order = %+v, %v; want %d units, nothing released", a, err, orderStock-orderQty)
	}
}

func testOrderAvailableReleases(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	const overdue, batch = 7, 3
	s, ks := c.orders(t, func(o *impl.OrderOptions) { o.ReservationTTL = shortTTL; o.ReleaseBatch = batch })
	live, err := c.backend.(impl.OrderBackend).Orders(c.strategy, impl.OrderOptions{Keys: ks, ReservationTTL: time.Minute, ReleaseBatch: batch})
	if err != nil {
		t.Fatal(err)
	}
	setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
	for i := range overdue {
		n := newOrder("sku", "late-"+strconv.Itoa(i))
		mustCreate(t, ctx, s, n)
		mustMove(t, ctx, s, n.Ref(), impl.StatusProcessing)
	}
	paid := newOrder("sku", "paid")
	mustCreate(t, ctx, live, paid)
	mustMove(t, ctx, live, paid.Ref(), impl.StatusProcessing, impl.StatusPaid)
	keep := newOrder("sku", "keep")
	mustCreate(t, ctx, live, keep)
	mustMove(t, ctx, live, keep.Ref(), impl.StatusProcessing)
	time.Sleep(expiryWait)

	a, err := s.Available(ctx, "sku")
	want := impl.Availability{Units: orderStock - 2*orderQty, Reservations: 1, Released: overdue, ReleasedUnits: overdue * orderQty}
	if err != nil || a != want {
		t.Fatalf("Available = %+v, %v; want %+v", a, err, want)
	}
	if a, err := s.Available(ctx, "sku"); err != nil || a.Released != 0 || a.Units != want.Units {
		t.Errorf("second Available = %+v, %v; want nothing more released", a, err)
	}
	for i := range overdue {
		o, err := live.Get(ctx, impl.OrderRef{Item: "sku", ID: "late-" + strconv.Itoa(i)})
		if err != nil || o.Status != impl.StatusCancelled || o.CancelReason != impl.CancelExpired {
			t.Errorf("overdue order %d = %+v, %v; want cancelled (expired)", i, o, err)
		}
	}
	if o, err := live.Get(ctx, keep.Ref()); err != nil || o.Status != impl.StatusProcessing {
		t.Errorf("live reservation = %+v, %v; want still processing", o, err)
	}
	if a, err := s.Available(ctx, "never-stocked"); err != nil || a != (impl.Availability{}) {
		t.Errorf("Available(never stocked) = %+v, %v", a, err)
	}
}

func testOrderReserveReclaims(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, func(o *impl.OrderOptions) { o.ReservationTTL = shortTTL })
	live, err := c.backend.(impl.OrderBackend).Orders(c.strategy, impl.OrderOptions{Keys: ks, ReservationTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	setStock(t, ctx, c.env.Admin, ks, "sku", orderQty)
	first, second := newOrder("sku", "abandoned"), newOrder("sku", "next")
	mustCreate(t, ctx, s, first)
	mustMove(t, ctx, s, first.Ref(), impl.StatusProcessing)
	mustCreate(t, ctx, s, second)
	time.Sleep(expiryWait)
	// The only units are held by an overdue reservation: reserving finds
	// the stock short, returns them first and succeeds (with a reservation
	// that lives, so that nothing else expires in this test).
	mustMove(t, ctx, live, second.Ref(), impl.StatusProcessing)
	if o, err := s.Get(ctx, first.Ref()); err != nil || o.Status != impl.StatusCancelled {
		t.Errorf("abandoned order = %+v, %v; want cancelled", o, err)
	}
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != 0 {
		t.Errorf("stock %d, want 0", got)
	}
}

func testOrderPayCancelRace(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	const orders = 40
	setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
	refs := make([]impl.OrderRef, orders)
	for i := range refs {
		n := newOrder("sku", "o-"+strconv.Itoa(i))
		mustCreate(t, ctx, s, n)
		mustMove(t, ctx, s, n.Ref(), impl.StatusProcessing)
		refs[i] = n.Ref()
	}
	var wg sync.WaitGroup
	wins := make([]atomic.Int32, orders)
	errs := make(chan error, 2*orders)
	start := make(chan struct{})
	for i, ref := range refs {
		for _, to := range []impl.OrderStatus{impl.StatusPaid, impl.StatusCancelled} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, applied, err := s.Transition(ctx, ref, to)
				switch {
				case err == nil && applied:
					wins[i].Add(1)
				case !errors.Is(err, impl.ErrIllegalTransition):
					errs <- fmt.Errorf("%s → %s: %w", ref, to, err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var paid int64
	for i, ref := range refs {
		if w := wins[i].Load(); w != 1 {
			t.Errorf("%s: %d transitions applied, want exactly 1", ref, w)
		}
		st := readOrderState(t, ctx, c.env.Admin, ks, ref)
		switch impl.OrderStatus(st.fields[impl.OrderFieldStatus]) {
		case impl.StatusPaid:
			paid++
			if st.ledgerTotal != orderAmount {
				t.Errorf("%s paid with ledger %d", ref, st.ledgerTotal)
			}
		case impl.StatusCancelled:
			if st.ledgerTotal != 0 {
				t.Errorf("%s cancelled with ledger %d", ref, st.ledgerTotal)
			}
		default:
			t.Errorf("%s ended %s", ref, st.fields[impl.OrderFieldStatus])
		}
		if st.reserved {
			t.Errorf("%s still reserved", ref)
		}
	}
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != orderStock-paid*orderQty {
		t.Errorf("stock %d, want %d for %d paid orders", got, orderStock-paid*orderQty, paid)
	}
}

func testOrderScriptFlush(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
	steps := []func(n impl.NewOrder) error{
		func(n impl.NewOrder) error { _, _, err := s.Create(ctx, n); return err },
		func(n impl.NewOrder) error { _, err := s.Get(ctx, n.Ref()); return err },
		func(n impl.NewOrder) error {
			_, _, err := s.Transition(ctx, n.Ref(), impl.StatusProcessing)
			return err
		},
		func(n impl.NewOrder) error { _, err := s.Available(ctx, n.Item); return err },
	}
	for round := range 2 {
		n := newOrder("sku", "o-"+strconv.Itoa(round))
		for i, step := range steps {
			// The server forgets every script: EVALSHA fails with NOSCRIPT
			// and the library must fall back to EVAL.
			if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
				t.Fatalf("SCRIPT FLUSH: %v", err)
			}
			if err := step(n); err != nil {
				t.Fatalf("round %d step %d after SCRIPT FLUSH: %v", round, i, err)
			}
		}
	}
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != orderStock-2*orderQty {
		t.Errorf("stock %d, want %d", got, orderStock-2*orderQty)
	}
}

func testOrderNaiveOverwrites(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	s, ks := c.orders(t, nil)
	setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
	n := newOrder("sku", "retry")
	mustCreate(t, ctx, s, n)
	mustMove(t, ctx, s, n.Ref(), impl.StatusProcessing)
	// The seed's add_order again: a second "new" order, status reset.
	o, created, err := s.Create(ctx, n)
	if err != nil || !created || o.Status != impl.StatusCreated {
		t.Fatalf("naive retried Create = %s created %v, %v; want it to answer new", o.Status, created, err)
	}
	mustMove(t, ctx, s, n.Ref(), impl.StatusProcessing)
	st := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
	if st.stock != orderStock-2*orderQty {
		t.Errorf("stock %d, want %d: the naive retry deducts twice", st.stock, orderStock-2*orderQty)
	}
	if st.reserved {
		t.Errorf("naive strategy reserved (it only deducts)")
	}
}

func testOrderNaiveUnchecked(t *testing.T, c orderCase) {
	ctx := orderContext(t)
	// The naive strategy with the seed's own reduce_stock: its refusal is
	// ignored and the order moves on.
	s, ks := c.orders(t, func(o *impl.OrderOptions) { o.NaiveStock = impl.StockNaive })
	setStock(t, ctx, c.env.Admin, ks, "sku", 1)
	n := newOrder("sku", "o")
	mustCreate(t, ctx, s, n)
	mustMove(t, ctx, s, n.Ref(), impl.StatusProcessing) // 2 wanted, 1 in stock
	if got, _ := c.env.Admin.Get(ctx, impl.StockKey(ks, "sku")).Int64(); got != 1 {
		t.Errorf("stock %d, want 1 (the refused deduction ignored)", got)
	}
	// No state check: paid and cancelled both apply, with both effects.
	mustMove(t, ctx, s, n.Ref(), impl.StatusPaid, impl.StatusCancelled, impl.StatusPaid)
	st := readOrderState(t, ctx, c.env.Admin, ks, n.Ref())
	if st.fields[impl.OrderFieldStatus] != string(impl.StatusPaid) || st.ledgerTotal != 2*orderAmount || st.stock != 1+orderQty {
		t.Errorf("after paid, cancelled, paid: %+v; want paid, captured twice, stock returned", st)
	}
	// A move to itself is applied again too.
	if _, applied, err := s.Transition(ctx, n.Ref(), impl.StatusPaid); err != nil || !applied {
		t.Errorf("naive repeated pay = applied %v, %v", applied, err)
	}
	if a, err := s.Available(ctx, "sku"); err != nil || a.Units != 1+orderQty {
		t.Errorf("Available = %+v, %v", a, err)
	}
}

// readOrderRecord reads an order's record (hash and ledger entries)
// through the neutral client.
func readOrderRecord(t *testing.T, ctx context.Context, admin redis.UniversalClient, ks impl.Keyspace, ref impl.OrderRef) impl.OrderRecord {
	t.Helper()
	st := readOrderState(t, ctx, admin, ks, ref)
	var r impl.OrderRecord
	if len(st.fields) > 0 {
		o, err := impl.ParseOrder(st.fields)
		if err != nil {
			t.Fatalf("stored order %s: %v", ref, err)
		}
		r.Order, r.Found = o, true
	}
	for _, e := range st.ledger {
		amount, err := strconv.ParseInt(fmt.Sprint(e[impl.LedgerFieldAmount]), 10, 64)
		if err != nil || !r.AddLedger(fmt.Sprint(e[impl.LedgerFieldKind]), amount) {
			t.Fatalf("ledger entry %v of %s: %v", e, ref, err)
		}
	}
	return r
}

// testOrderMovesLeaveRecords walks an order along every path of the state
// machine (and into a lazy expiry) and checks after each step that the
// server's record shows exactly the moves made so far: what a caller whose
// reply was lost reads back to settle it (impl.OrderRecord.Recorded).
func testOrderMovesLeaveRecords(t *testing.T, c orderCase) {
	for _, tc := range []struct {
		name  string
		path  []impl.OrderStatus
		extra impl.OrderMove // impl.MoveExpire: let the reservation expire, then Get
	}{
		{"complete", []impl.OrderStatus{impl.StatusProcessing, impl.StatusPaid, impl.StatusCompleted}, ""},
		{"refund", []impl.OrderStatus{impl.StatusProcessing, impl.StatusPaid, impl.StatusRefunded}, ""},
		{"cancel created", []impl.OrderStatus{impl.StatusCancelled}, ""},
		{"cancel processing", []impl.OrderStatus{impl.StatusProcessing, impl.StatusCancelled}, ""},
		{"expire", []impl.OrderStatus{impl.StatusProcessing}, impl.MoveExpire},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := orderContext(t)
			s, ks := c.orders(t, func(o *impl.OrderOptions) {
				if tc.extra == impl.MoveExpire {
					o.ReservationTTL = shortTTL
				}
			})
			setStock(t, ctx, c.env.Admin, ks, "sku", orderStock)
			n := newOrder("sku", "o")
			done := map[impl.OrderMove]bool{}
			check := func(step string) {
				t.Helper()
				r := readOrderRecord(t, ctx, c.env.Admin, ks, n.Ref())
				for _, m := range impl.OrderMoves() {
					if got := r.Recorded(m); got != done[m] {
						t.Errorf("after %s: Recorded(%s) = %v, want %v (record %+v)", step, m, got, done[m], r)
					}
				}
			}
			check("nothing")
			mustCreate(t, ctx, s, n)
			done[impl.MoveCreate] = true
			check("create")
			for _, to := range tc.path {
				mustMove(t, ctx, s, n.Ref(), to)
				done[impl.MoveTo(to)] = true
				check(string(impl.MoveTo(to)))
			}
			if tc.extra == impl.MoveExpire {
				time.Sleep(expiryWait)
				if o, err := s.Get(ctx, n.Ref()); err != nil || o.CancelReason != impl.CancelExpired {
					t.Fatalf("Get after the TTL = %+v, %v; want cancelled (expired)", o, err)
				}
				done[impl.MoveExpire] = true
				check("expire")
			}
		})
	}
}
