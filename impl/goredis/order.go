package goredis

import (
	"context"
	"errors"
	"fmt"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The order scripts of the safe strategy, shared by every Client.
var (
	orderCreateScript     = redis.NewScript(scripts.OrderCreate)
	orderGetScript        = redis.NewScript(scripts.OrderGet)
	orderTransitionScript = redis.NewScript(scripts.OrderTransition)
	orderReleaseScript    = redis.NewScript(scripts.OrderRelease)
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
		return nil, errors.New("goredis: orders: OrderOptions.Keys is required")
	}
	opts = opts.WithDefaults()
	switch strategy {
	case impl.OrderNaive:
		stock, err := c.Stock(opts.NaiveStock, impl.StockOptions{Keys: opts.Keys})
		if err != nil {
			return nil, fmt.Errorf("goredis: orders: naive stock: %w", err)
		}
		return &naiveOrders{rdb: c.rdb, opts: opts, stock: stock}, nil
	case impl.OrderSafe:
		return &safeOrders{rdb: c.rdb, opts: opts}, nil
	}
	return nil, impl.StrategyError("orders", strategy, impl.OrderStrategies())
}

func orderErrorf(strategy, op string, ref impl.OrderRef, err error) error {
	return fmt.Errorf("goredis orders %s: %s %s: %w", strategy, op, ref, err)
}

// checkTarget refuses a status that is not one of impl.OrderStatuses.
func checkTarget(to impl.OrderStatus) error {
	if !to.Valid() {
		return fmt.Errorf("%w: unknown status %q", impl.ErrIllegalTransition, to)
	}
	return nil
}

// naiveOrders is the seed's order code on go-redis: add_order is an HSET
// of every field (overwriting an existing order), update_order_status an
// HSET of "status", and the side effects are separate commands after it.
type naiveOrders struct {
	rdb   redis.UniversalClient
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
	err := s.rdb.HSet(ctx, s.key(n.Ref()),
		impl.OrderFieldID, n.ID,
		impl.OrderFieldItem, n.Item,
		impl.OrderFieldQuantity, n.Quantity,
		impl.OrderFieldAmount, n.Amount,
		impl.OrderFieldStatus, string(impl.StatusCreated),
		impl.OrderFieldCreated, now,
		impl.OrderFieldUpdated, now,
	).Err()
	if err != nil {
		return impl.Order{}, false, orderErrorf(impl.OrderNaive, "create", n.Ref(), err)
	}
	return naiveOrder(n, now), true, nil
}

// naiveOrder is the order the naive Create reports: what it wrote.
func naiveOrder(n impl.NewOrder, nowMs int64) impl.Order {
	t := impl.Order{Item: n.Item, ID: n.ID, Quantity: n.Quantity, Amount: n.Amount, Status: impl.StatusCreated}
	t.Created = timeMs(nowMs)
	t.Updated = t.Created
	return t
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
	fields, err := s.rdb.HGetAll(ctx, s.key(ref)).Result()
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
	if err := s.rdb.HSet(ctx, s.key(ref), impl.OrderFieldStatus, string(to), impl.OrderFieldUpdated, now).Err(); err != nil {
		return impl.Order{}, err
	}
	o.Status, o.Updated = to, timeMs(now)
	stockKey := impl.StockKey(s.opts.Keys, ref.Item)
	switch to {
	case impl.StatusProcessing:
		// The seed's reduce_stock; its answer is ignored, as in the seed.
		if _, err := s.stock.Deduct(ctx, ref.Item, o.Quantity); err != nil {
			return impl.Order{}, err
		}
	case impl.StatusPaid:
		err = s.ledger(ctx, o, impl.LedgerCapture)
	case impl.StatusCancelled:
		err = s.rdb.IncrBy(ctx, stockKey, o.Quantity).Err()
	case impl.StatusRefunded:
		if err = s.ledger(ctx, o, impl.LedgerRefund); err == nil {
			err = s.rdb.IncrBy(ctx, stockKey, o.Quantity).Err()
		}
	}
	if err != nil {
		return impl.Order{}, err
	}
	return o, nil
}

func (s *naiveOrders) ledger(ctx context.Context, o impl.Order, kind string) error {
	return s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: impl.LedgerKey(s.opts.Keys, o.Item),
		Values: []any{
			impl.LedgerFieldOrder, o.ID,
			impl.LedgerFieldKind, kind,
			impl.LedgerFieldAmount, o.Amount,
			impl.LedgerFieldQuantity, o.Quantity,
		},
	}).Err()
}

// Available reads the stock counter; the naive strategy reserves nothing.
func (s *naiveOrders) Available(ctx context.Context, item string) (impl.Availability, error) {
	n, err := s.stock.Get(ctx, item)
	if err != nil {
		return impl.Availability{}, fmt.Errorf("goredis orders naive: available %q: %w", item, err)
	}
	return impl.Availability{Units: n}, nil
}

// safeOrders runs every write as one script: idempotent create, and
// transitions that compare-and-set the status and apply their side effects
// atomically. Overdue reservations are returned lazily (see
// impl.OrderOptions.ReservationTTL).
type safeOrders struct {
	rdb  redis.UniversalClient
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
	res, err := orderCreateScript.Run(ctx, s.rdb, []string{s.key(n.Ref())},
		n.ID, n.Item, n.Quantity, n.Amount).Slice()
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
	res, err := orderGetScript.Run(ctx, s.rdb, keys).Slice()
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
	ttl := s.opts.ReservationTTL.Milliseconds()
	for attempt := 0; ; attempt++ {
		res, err := orderTransitionScript.Run(ctx, s.rdb, keys, string(to), ttl).Slice()
		if err != nil {
			return impl.Order{}, false, orderErrorf(impl.OrderSafe, op, ref, err)
		}
		code, o, err := decodeOrderReply(res, 4)
		if err != nil {
			return impl.Order{}, false, orderErrorf(impl.OrderSafe, op, ref, err)
		}
		stock, overdue := replyInt(res[2]), replyInt(res[3])
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
		return impl.Availability{}, fmt.Errorf("goredis orders safe: available %q: %w", item, err)
	}
	stockKey := impl.StockKey(s.opts.Keys, item)
	resvKey := impl.ReservationsKey(s.opts.Keys, item)
	var a impl.Availability
	lastOverdue := int64(-1)
	for round := 0; round < maxReleaseRounds; round++ {
		ids, err := s.rdb.ZRange(ctx, resvKey, 0, int64(s.opts.ReleaseBatch-1)).Result()
		if err != nil {
			return impl.Availability{}, fmt.Errorf("goredis orders safe: available %q: %w", item, err)
		}
		keys := make([]string, 0, 2+len(ids))
		keys = append(keys, stockKey, resvKey)
		args := make([]any, 0, len(ids))
		for _, id := range ids {
			keys = append(keys, impl.OrderKey(s.opts.Keys, impl.OrderRef{Item: item, ID: id}))
			args = append(args, id)
		}
		res, err := orderReleaseScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
		if err != nil {
			return impl.Availability{}, fmt.Errorf("goredis orders safe: available %q: %w", item, err)
		}
		if len(res) != 5 {
			return impl.Availability{}, fmt.Errorf("goredis orders safe: available %q: script replied %v", item, res)
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
func decodeOrderReply(res []any, want int) (int64, impl.Order, error) {
	if len(res) != want {
		return 0, impl.Order{}, fmt.Errorf("script replied %d values, want %d", len(res), want)
	}
	code, ok := res[0].(int64)
	if !ok {
		return 0, impl.Order{}, fmt.Errorf("script replied code %v (%T)", res[0], res[0])
	}
	flat, ok := res[1].([]any)
	if !ok {
		return 0, impl.Order{}, fmt.Errorf("script replied fields %v (%T)", res[1], res[1])
	}
	if len(flat) == 0 {
		return code, impl.Order{}, nil
	}
	if len(flat)%2 != 0 {
		return 0, impl.Order{}, fmt.Errorf("script replied %d field values, want pairs", len(flat))
	}
	fields := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		fields[fmt.Sprint(flat[i])] = fmt.Sprint(flat[i+1])
	}
	o, err := impl.ParseOrder(fields)
	return code, o, err
}

func replyInt(v any) int64 {
	n, _ := v.(int64)
	return n
}

// timeMs converts a Unix time in milliseconds.
func timeMs(ms int64) time.Time { return time.UnixMilli(ms) }
