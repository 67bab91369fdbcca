package rueidis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The order scripts of the safe strategy, shared by every Client.
var (
	orderCreateScript     = rd.NewLuaScript(scripts.OrderCreate)
	orderGetScript        = rd.NewLuaScript(scripts.OrderGet)
	orderTransitionScript = rd.NewLuaScript(scripts.OrderTransition)
	orderReleaseScript    = rd.NewLuaScript(scripts.OrderRelease)
)

// Compile-time checks.
var (
	_ impl.OrderBackend = (*Client)(nil)
	_ impl.Orders       = (*naiveOrders)(nil)
	_ impl.Orders       = (*safeOrders)(nil)
)

// Orders returns the named order strategy (one of impl.OrderStrategies).
// Zero options take their defaults (impl.OrderOptions.WithDefaults);
// opts.Keys is required.
func (c *Client) Orders(strategy string, opts impl.OrderOptions) (impl.Orders, error) {
	if opts.Keys.Prefix() == "" {
		return nil, errors.New("rueidis: orders: OrderOptions.Keys is required")
	}
	opts = opts.WithDefaults()
	switch strategy {
	case impl.OrderNaive:
		stock, err := c.Stock(opts.NaiveStock, impl.StockOptions{Keys: opts.Keys})
		if err != nil {
			return nil, fmt.Errorf("rueidis: orders: naive stock: %w", err)
		}
		return &naiveOrders{rc: c.rc, opts: opts, stock: stock}, nil
	case impl.OrderSafe:
		return &safeOrders{rc: c.rc, opts: opts}, nil
	}
	return nil, impl.StrategyError("orders", strategy, impl.OrderStrategies())
}

func orderErrorf(strategy, op string, ref impl.OrderRef, err error) error {
	return fmt.Errorf("rueidis orders %s: %s %s: %w", strategy, op, ref, err)
}

// checkTarget refuses a status that is not one of impl.OrderStatuses.
func checkTarget(to impl.OrderStatus) error {
	if !to.Valid() {
		return fmt.Errorf("%w: unknown status %q", impl.ErrIllegalTransition, to)
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// naiveOrders is the seed's order code on rueidis: add_order is an HSET of
// every field (overwriting an existing order), update_order_status an HSET
// of "status", and the side effects are separate commands after it.
type naiveOrders struct {
	rc    rd.Client
	opts  impl.OrderOptions
	stock impl.Stock
}

func (s *naiveOrders) key(ref impl.OrderRef) string { return impl.OrderKey(s.opts.Keys, ref) }

// Create writes the order with HSET, whether or not it exists: a retry
// overwrites the order (its status goes back to created) and answers
// created every time.
func (s *naiveOrders) Create(ctx context.Context, n impl.NewOrder) (impl.Order, bool, error) {
	if err := n.Validate(); err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderNaive, "create", n.Ref(), err)
	}
	now := s.opts.Now().UnixMilli()
	cmd := s.rc.B().Hset().Key(s.key(n.Ref())).FieldValue().
		FieldValue(impl.OrderFieldID, n.ID).
		FieldValue(impl.OrderFieldItem, n.Item).
		FieldValue(impl.OrderFieldQuantity, itoa(n.Quantity)).
		FieldValue(impl.OrderFieldAmount, itoa(n.Amount)).
		FieldValue(impl.OrderFieldStatus, string(impl.StatusCreated)).
		FieldValue(impl.OrderFieldCreated, itoa(now)).
		FieldValue(impl.OrderFieldUpdated, itoa(now)).
		Build()
	if err := s.rc.Do(ctx, cmd).Error(); err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderNaive, "create", n.Ref(), err)
	}
	o := impl.Order{Item: n.Item, ID: n.ID, Quantity: n.Quantity, Amount: n.Amount, Status: impl.StatusCreated}
	o.Created = time.UnixMilli(now)
	o.Updated = o.Created
	return o, true, nil
}

// Get reads the order with HGETALL.
func (s *naiveOrders) Get(ctx context.Context, ref impl.OrderRef) (impl.Order, error) {
	o, err := s.get(ctx, ref)
	if err != nil {
		return impl.Order{}, orderErrorf(impl.OrderNaive, "get", ref, err)
	}
	return o, nil
}

func (s *naiveOrders) get(ctx context.Context, ref impl.OrderRef) (impl.Order, error) {
	if err := ref.Validate(); err != nil {
		return impl.Order{}, err
	}
	fields, err := s.rc.Do(ctx, s.rc.B().Hgetall().Key(s.key(ref)).Build()).AsStrMap()
	if err != nil {
		return impl.Order{}, err
	}
	return impl.ParseOrder(fields)
}

// Transition reads the order (for its quantity and amount), writes the
// new status with HSET whatever the current one is, then applies the
// target's side effect as a separate command: created → processing deducts
// with the NaiveStock strategy and ignores its answer; paid writes a ledger
// capture; cancelled returns the units; refunded writes a ledger refund
// and returns the units.
func (s *naiveOrders) Transition(ctx context.Context, ref impl.OrderRef, to impl.OrderStatus) (impl.Order, bool, error) {
	o, err := s.transition(ctx, ref, to)
	if err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderNaive, "transition to "+string(to), ref, err)
	}
	return o, true, nil
}

func (s *naiveOrders) transition(ctx context.Context, ref impl.OrderRef, to impl.OrderStatus) (impl.Order, error) {
	if err := checkTarget(to); err != nil {
		return impl.Order{}, err
	}
	o, err := s.get(ctx, ref)
	if err != nil {
		return impl.Order{}, err
	}
	now := s.opts.Now().UnixMilli()
	set := s.rc.B().Hset().Key(s.key(ref)).FieldValue().
		FieldValue(impl.OrderFieldStatus, string(to)).
		FieldValue(impl.OrderFieldUpdated, itoa(now)).
		Build()
	if err := s.rc.Do(ctx, set).Error(); err != nil {
		return impl.Order{}, err
	}
	o.Status, o.Updated = to, time.UnixMilli(now)
	restock := s.rc.B().Incrby().Key(impl.StockKey(s.opts.Keys, ref.Item)).Increment(o.Quantity).Build()
	switch to {
	case impl.StatusProcessing:
		// The seed's reduce_stock; its answer is ignored, as in the seed.
		if _, err := s.stock.Deduct(ctx, ref.Item, o.Quantity); err != nil {
			return impl.Order{}, err
		}
	case impl.StatusPaid:
		err = s.rc.Do(ctx, s.ledger(o, impl.LedgerCapture)).Error()
	case impl.StatusCancelled:
		err = s.rc.Do(ctx, restock).Error()
	case impl.StatusRefunded:
		if err = s.rc.Do(ctx, s.ledger(o, impl.LedgerRefund)).Error(); err == nil {
			err = s.rc.Do(ctx, restock).Error()
		}
	}
	if err != nil {
		return impl.Order{}, err
	}
	return o, nil
}

func (s *naiveOrders) ledger(o impl.Order, kind string) rd.Completed {
	return s.rc.B().Xadd().Key(impl.LedgerKey(s.opts.Keys, o.Item)).Id("*").FieldValue().
		FieldValue(impl.LedgerFieldOrder, o.ID).
		FieldValue(impl.LedgerFieldKind, kind).
		FieldValue(impl.LedgerFieldAmount, itoa(o.Amount)).
		FieldValue(impl.LedgerFieldQuantity, itoa(o.Quantity)).
		Build()
}

// Available reads the stock counter; the naive strategy reserves nothing.
func (s *naiveOrders) Available(ctx context.Context, item string) (impl.Availability, error) {
	n, err := s.stock.Get(ctx, item)
	if err != nil {
		return impl.Availability{}, fmt.Errorf("rueidis orders naive: available %q: %w", item, err)
	}
	return impl.Availability{Units: n}, nil
}

// safeOrders runs every write as one script: idempotent create, and
// transitions that compare-and-set the status and apply their side effects
// atomically. Overdue reservations are returned lazily (see
// impl.OrderOptions.ReservationTTL).
type safeOrders struct {
	rc   rd.Client
	opts impl.OrderOptions
}

func (s *safeOrders) key(ref impl.OrderRef) string { return impl.OrderKey(s.opts.Keys, ref) }

// Create runs scripts.OrderCreate: the order is stored only when its key
// does not exist; a retry returns the stored order with created false, or
// ErrOrderConflict when its quantity or amount differ.
func (s *safeOrders) Create(ctx context.Context, n impl.NewOrder) (impl.Order, bool, error) {
	if err := n.Validate(); err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderSafe, "create", n.Ref(), err)
	}
	res, err := orderCreateScript.Exec(ctx, s.rc, []string{s.key(n.Ref())},
		[]string{n.ID, n.Item, itoa(n.Quantity), itoa(n.Amount)}).ToArray()
	if err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderSafe, "create", n.Ref(), err)
	}
	code, o, err := decodeOrderReply(res, 2)
	if err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderSafe, "create", n.Ref(), err)
	}
	created := code == impl.OrderCodeApplied
	if !created && (o.Quantity != n.Quantity || o.Amount != n.Amount) {
		return o, false, orderErrorf(impl.OrderSafe, "create", n.Ref(),
			fmt.Errorf("%w: stored qty %d amount %d, asked qty %d amount %d",
				impl.ErrOrderConflict, o.Quantity, o.Amount, n.Quantity, n.Amount))
	}
	return o, created, nil
}

// Get runs scripts.OrderGet, which cancels the order first when its
// reservation is overdue.
func (s *safeOrders) Get(ctx context.Context, ref impl.OrderRef) (impl.Order, error) {
	if err := ref.Validate(); err != nil {
		return impl.Order{}, orderErrorf(impl.OrderSafe, "get", ref, err)
	}
	keys := []string{s.key(ref), impl.StockKey(s.opts.Keys, ref.Item), impl.ReservationsKey(s.opts.Keys, ref.Item)}
	res, err := orderGetScript.Exec(ctx, s.rc, keys, nil).ToArray()
	if err != nil {
		return impl.Order{}, orderErrorf(impl.OrderSafe, "get", ref, err)
	}
	code, o, err := decodeOrderReply(res, 2)
	if err == nil && code != impl.OrderCodeApplied {
		err = impl.ErrOrderNotFound
	}
	if err != nil {
		return impl.Order{}, orderErrorf(impl.OrderSafe, "get", ref, err)
	}
	return o, nil
}

// Transition runs scripts.OrderTransition. When a reservation finds the
// stock short while overdue reservations of the item hold units, it
// returns those (Available) and tries once more.
func (s *safeOrders) Transition(ctx context.Context, ref impl.OrderRef, to impl.OrderStatus) (impl.Order, bool, error) {
	op := "transition to " + string(to)
	if err := ref.Validate(); err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderSafe, op, ref, err)
	}
	if err := checkTarget(to); err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderSafe, op, ref, err)
	}
	keys := []string{
		s.key(ref),
		impl.StockKey(s.opts.Keys, ref.Item),
		impl.ReservationsKey(s.opts.Keys, ref.Item),
		impl.LedgerKey(s.opts.Keys, ref.Item),
	}
	args := []string{string(to), itoa(s.opts.ReservationTTL.Milliseconds())}
	for attempt := 0; ; attempt++ {
		res, err := orderTransitionScript.Exec(ctx, s.rc, keys, args).ToArray()
		if err != nil {
			return impl.Order{}, false, orderErrorf(impl.OrderSafe, op, ref, err)
		}
		code, o, err := decodeOrderReply(res, 4)
		if err != nil {
			return impl.Order{}, false, orderErrorf(impl.OrderSafe, op, ref, err)
		}
		stock, _ := res[2].AsInt64()
		overdue, _ := res[3].AsInt64()
		if code == impl.OrderCodeNoStock && overdue > 0 && attempt == 0 {
			if _, err := s.Available(ctx, ref.Item); err != nil {
				return impl.Order{}, false, orderErrorf(impl.OrderSafe, op, ref, err)
			}
			continue
		}
		applied, err := impl.TransitionOutcome(ref, o, to, code, stock)
		if err != nil {
			return o, false, orderErrorf(impl.OrderSafe, op, ref, err)
		}
		return o, applied, nil
	}
}

// maxReleaseRounds bounds the release scripts one Available runs.
const maxReleaseRounds = 1024

// Available returns the item's overdue reservations to stock, in batches
// of opts.ReleaseBatch: ZRANGE reads the earliest deadlines, and
// scripts.OrderRelease checks each candidate again and returns its units
// atomically.
func (s *safeOrders) Available(ctx context.Context, item string) (impl.Availability, error) {
	if err := (impl.OrderRef{Item: item}).Validate(); err != nil {
		return impl.Availability{}, fmt.Errorf("rueidis orders safe: available %q: %w", item, err)
	}
	stockKey := impl.StockKey(s.opts.Keys, item)
	resvKey := impl.ReservationsKey(s.opts.Keys, item)
	var a impl.Availability
	lastOverdue := int64(-1)
	for round := 0; round < maxReleaseRounds; round++ {
		rng := s.rc.B().Zrange().Key(resvKey).Min("0").Max(strconv.Itoa(s.opts.ReleaseBatch - 1)).Build()
		ids, err := s.rc.Do(ctx, rng).AsStrSlice()
		if err != nil {
			return impl.Availability{}, fmt.Errorf("rueidis orders safe: available %q: %w", item, err)
		}
		keys := make([]string, 0, 2+len(ids))
		keys = append(keys, stockKey, resvKey)
		for _, id := range ids {
			keys = append(keys, impl.OrderKey(s.opts.Keys, impl.OrderRef{Item: item, ID: id}))
		}
		res, err := orderReleaseScript.Exec(ctx, s.rc, keys, ids).AsIntSlice()
		if err != nil {
			return impl.Availability{}, fmt.Errorf("rueidis orders safe: available %q: %w", item, err)
		}
		if len(res) != 5 {
			return impl.Availability{}, fmt.Errorf("rueidis orders safe: available %q: script replied %v", item, res)
		}
		a.Released += res[0]
		a.ReleasedUnits += res[1]
		a.Units, a.Reservations = res[2], res[3]
		overdue := res[4]
		if overdue == 0 || (lastOverdue >= 0 && overdue >= lastOverdue) {
			break
		}
		lastOverdue = overdue
	}
	return a, nil
}

// decodeOrderReply decodes the {code, fields, ...} reply of the order
// scripts: want is the reply's length. The order is zero when fields is
// empty.
func decodeOrderReply(res []rd.RedisMessage, want int) (int64, impl.Order, error) {
	if len(res) != want {
		return 0, impl.Order{}, fmt.Errorf("script replied %d values, want %d", len(res), want)
	}
	code, err := res[0].AsInt64()
	if err != nil {
		return 0, impl.Order{}, fmt.Errorf("script reply code: %w", err)
	}
	fields, err := res[1].AsStrMap()
	if err != nil {
		return 0, impl.Order{}, fmt.Errorf("script reply fields: %w", err)
	}
	if len(fields) == 0 {
		return code, impl.Order{}, nil
	}
	o, err := impl.ParseOrder(fields)
	return code, o, err
}
