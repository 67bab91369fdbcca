package impl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Order strategies.
const (
	// OrderNaive is the seed's order code: create is an HSET that
	// overwrites whatever was there, a transition is an unconditional HSET
	// of "status", and the side effects (stock, ledger) are separate
	// commands issued after it, unchecked — a deduction's refusal is
	// ignored, as the seed's worked example ignores reduce_stock's answer.
	OrderNaive = "naive"
	// OrderSafe creates idempotently by order id and moves an order along
	// the state machine with compare-and-set scripts that apply the side
	// effects (reserve stock with a TTL, convert the reservation into a
	// sale, return stock, write the ledger) atomically with the status
	// change.
	OrderSafe = "safe"
)

// OrderStrategies lists the order strategies in display order.
func OrderStrategies() []string { return []string{OrderNaive, OrderSafe} }

// OrderStatus is the status of an order.
type OrderStatus string

// Order statuses. The safe strategy allows exactly these transitions:
//
//	created ──► processing ──► paid ──► completed
//	   │             │           │
//	   └──► cancelled ◄──┘           └──► refunded
//
// created → processing reserves the units (stock is taken, the
// reservation lives until ReservedUntil); processing → paid converts the
// reservation into a sale and writes a capture to the ledger; paid →
// completed has no side effect (the goods went out); created|processing →
// cancelled returns the reserved units, if any; paid → refunded writes a
// refund to the ledger and returns the units to stock (refunds happen
// before fulfilment; a completed order is final). A processing order whose
// reservation expired is cancelled with CancelReason "expired".
const (
	StatusCreated    OrderStatus = "created"
	StatusProcessing OrderStatus = "processing"
	StatusPaid       OrderStatus = "paid"
	StatusCompleted  OrderStatus = "completed"
	StatusCancelled  OrderStatus = "cancelled"
	StatusRefunded   OrderStatus = "refunded"
)

// OrderStatuses lists every status, in lifecycle order.
func OrderStatuses() []OrderStatus {
	return []OrderStatus{StatusCreated, StatusProcessing, StatusPaid, StatusCompleted, StatusCancelled, StatusRefunded}
}

// Valid reports whether s is one of OrderStatuses.
func (s OrderStatus) Valid() bool {
	_, ok := orderTransitions[s]
	return ok
}

// orderTransitions is the state machine: the statuses each status may move
// to. scripts/order_transition.lua holds the same table; the conformance
// suite checks every pair on both.
var orderTransitions = map[OrderStatus][]OrderStatus{
	StatusCreated:    {StatusProcessing, StatusCancelled},
	StatusProcessing: {StatusPaid, StatusCancelled},
	StatusPaid:       {StatusCompleted, StatusRefunded},
	StatusCompleted:  nil,
	StatusCancelled:  nil,
	StatusRefunded:   nil,
}

// CanTransition reports whether the state machine allows from → to. A
// status never "transitions" to itself: a repeated transition is answered
// as already done (see Orders.Transition), not as a move.
func CanTransition(from, to OrderStatus) bool {
	for _, s := range orderTransitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Terminal reports whether no transition leaves s.
func (s OrderStatus) Terminal() bool { return s.Valid() && len(orderTransitions[s]) == 0 }

// HoldsUnits reports whether an order in status s holds its units out of
// stock: reserved (processing) or sold (paid, completed).
func (s OrderStatus) HoldsUnits() bool {
	return s == StatusProcessing || s == StatusPaid || s == StatusCompleted
}

// Captured reports whether an order in status s has its money captured:
// the ledger nets to its amount (paid, completed), as opposed to zero
// (never captured, or captured and refunded).
func (s OrderStatus) Captured() bool { return s == StatusPaid || s == StatusCompleted }

// Cancel reasons, in Order.CancelReason.
const (
	// CancelRequested: a caller asked for the cancellation.
	CancelRequested = "requested"
	// CancelExpired: the reservation ran out before the order was paid.
	CancelExpired = "expired"
)

// Order errors. Implementations wrap them (with %w) so callers test with
// errors.Is; illegal transitions come as *TransitionError.
var (
	// ErrOrderNotFound is returned for an order that does not exist.
	ErrOrderNotFound = errors.New("order not found")
	// ErrIllegalTransition is returned when the state machine does not
	// allow the move from the order's current status.
	ErrIllegalTransition = errors.New("illegal order transition")
	// ErrReservationExpired is returned (with ErrIllegalTransition) when an
	// order could not move because its reservation had expired; the order
	// is now cancelled and its units are back in stock.
	ErrReservationExpired = errors.New("reservation expired")
	// ErrOutOfStock is returned when created → processing cannot reserve
	// the order's units; the order stays created.
	ErrOutOfStock = errors.New("out of stock")
	// ErrOrderConflict is returned when Create is retried under an existing
	// order id with a different item, quantity or amount.
	ErrOrderConflict = errors.New("order id reused with different contents")
	// ErrInvalidAmount is returned, before any Redis call, for an amount
	// below zero or above MaxAmount.
	ErrInvalidAmount = errors.New("invalid amount")
)

// TransitionError reports a transition the state machine refused. It
// matches ErrIllegalTransition with errors.Is, and ErrReservationExpired
// too when Expired is set.
type TransitionError struct {
	// Order is the order that did not move.
	Order OrderRef
	// From is the order's status when the transition was refused.
	From OrderStatus
	// To is the status asked for.
	To OrderStatus
	// Expired is true when the order had been processing and its
	// reservation ran out: the same call cancelled it (From is then
	// cancelled).
	Expired bool
}

// Error describes the refused move.
func (e *TransitionError) Error() string {
	if e.Expired {
		return fmt.Sprintf("%s: order %s: %s → %s: %s (the order was cancelled and its units returned)",
			ErrIllegalTransition, e.Order, StatusProcessing, e.To, ErrReservationExpired)
	}
	return fmt.Sprintf("%s: order %s: %s → %s", ErrIllegalTransition, e.Order, e.From, e.To)
}

// Unwrap returns the sentinels the error matches.
func (e *TransitionError) Unwrap() []error {
	if e.Expired {
		return []error{ErrIllegalTransition, ErrReservationExpired}
	}
	return []error{ErrIllegalTransition}
}

// MaxAmount is the largest order amount, in minor units (cents):
// 10^12, ten billion in major units.
const MaxAmount = 1_000_000_000_000

// MaxOrderID is the longest order id or item id, in bytes.
const MaxOrderID = 4096

// OrderRef names one order. Orders are addressed by item and id together:
// every key of an order lives in its item's hash-tag slot (see OrderKey),
// so the id space is per item.
type OrderRef struct {
	Item string
	ID   string
}

// String returns item/id, quoted.
func (r OrderRef) String() string { return strconv.Quote(r.Item) + "/" + strconv.Quote(r.ID) }

// Validate returns an error wrapping ErrInvalidID when the item or id is
// longer than MaxOrderID. Any other string, empty ones included, is valid.
func (r OrderRef) Validate() error {
	if len(r.Item) > MaxOrderID || len(r.ID) > MaxOrderID {
		return fmt.Errorf("%w: item or order id longer than %d bytes", ErrInvalidID, MaxOrderID)
	}
	return nil
}

// NewOrder is what Create needs.
type NewOrder struct {
	// Item and ID identify the order; a retried Create passes the same.
	Item string
	ID   string
	// Quantity is the number of units, 1..MaxQuantity.
	Quantity int64
	// Amount is the price of the order in minor units, 0..MaxAmount.
	Amount int64
}

// Ref returns the order's reference.
func (n NewOrder) Ref() OrderRef { return OrderRef{Item: n.Item, ID: n.ID} }

// Validate checks the id, quantity and amount.
func (n NewOrder) Validate() error {
	if err := n.Ref().Validate(); err != nil {
		return err
	}
	if err := ValidateQuantity(n.Quantity); err != nil {
		return err
	}
	if n.Amount < 0 || n.Amount > MaxAmount {
		return fmt.Errorf("%w: %d (must be 0..%d)", ErrInvalidAmount, n.Amount, MaxAmount)
	}
	return nil
}

// Order is an order as stored on the server.
type Order struct {
	Item     string
	ID       string
	Quantity int64
	Amount   int64
	Status   OrderStatus
	// Created and Updated are when the order was created and last changed
	// (the server's clock for the safe strategy, the client's for naive).
	Created, Updated time.Time
	// ReservedUntil is when the reservation of a processing order expires
	// (safe strategy; zero otherwise).
	ReservedUntil time.Time
	// CancelReason is CancelRequested or CancelExpired for a cancelled
	// order, else empty.
	CancelReason string
}

// Ref returns the order's reference.
func (o Order) Ref() OrderRef { return OrderRef{Item: o.Item, ID: o.ID} }

// The fields of an order hash (impl.OrderKey).
const (
	OrderFieldID            = "id"
	OrderFieldItem          = "item"
	OrderFieldQuantity      = "qty"
	OrderFieldAmount        = "amount"
	OrderFieldStatus        = "status"
	OrderFieldCreated       = "created_ms"
	OrderFieldUpdated       = "updated_ms"
	OrderFieldReservedUntil = "reserved_until_ms"
	OrderFieldCancelReason  = "cancel_reason"
)

// ParseOrder decodes an order hash (HGETALL) as both strategies write it.
// It returns an error wrapping ErrOrderNotFound for an empty hash.
func ParseOrder(fields map[string]string) (Order, error) {
	if len(fields) == 0 {
		return Order{}, ErrOrderNotFound
	}
	o := Order{
		Item:         fields[OrderFieldItem],
		ID:           fields[OrderFieldID],
		Status:       OrderStatus(fields[OrderFieldStatus]),
		CancelReason: fields[OrderFieldCancelReason],
	}
	var err error
	if o.Quantity, err = parseOrderInt(fields, OrderFieldQuantity, true); err != nil {
		return Order{}, err
	}
	if o.Amount, err = parseOrderInt(fields, OrderFieldAmount, true); err != nil {
		return Order{}, err
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{
		{OrderFieldCreated, &o.Created},
		{OrderFieldUpdated, &o.Updated},
		{OrderFieldReservedUntil, &o.ReservedUntil},
	} {
		ms, err := parseOrderInt(fields, f.name, false)
		if err != nil {
			return Order{}, err
		}
		if ms > 0 {
			*f.dst = time.UnixMilli(ms)
		}
	}
	if !o.Status.Valid() {
		return Order{}, fmt.Errorf("order hash has status %q, not one of %v", o.Status, OrderStatuses())
	}
	return o, nil
}

func parseOrderInt(fields map[string]string, name string, required bool) (int64, error) {
	v, ok := fields[name]
	if !ok || v == "" {
		if required {
			return 0, fmt.Errorf("order hash lacks field %q", name)
		}
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("order hash field %q = %q: %w", name, v, err)
	}
	return n, nil
}

// Availability is an item's stock as the order family sees it.
type Availability struct {
	// Units is the sellable stock after overdue reservations were returned.
	Units int64
	// Reservations is the number of live reservations (processing orders)
	// left after the call.
	Reservations int64
	// Released and ReleasedUnits count the overdue reservations this call
	// returned to stock, and their units.
	Released, ReleasedUnits int64
}

// Orders is the order family: create, read and move orders through the
// state machine, with their side effects on stock (impl.StockKey) and on
// the item's ledger (impl.LedgerKey).
type Orders interface {
	// Create stores a new order in status created. created is false when
	// an order with that item and id already exists: the existing order is
	// returned unchanged (safe), or overwritten (naive, which always
	// answers true). A retry whose quantity or amount differs from the
	// stored order is refused with ErrOrderConflict (safe).
	Create(ctx context.Context, o NewOrder) (order Order, created bool, err error)
	// Get returns the order, or an error wrapping ErrOrderNotFound. For
	// the safe strategy a processing order whose reservation has expired is
	// cancelled by this read (its units go back to stock) and returned as
	// cancelled.
	Get(ctx context.Context, ref OrderRef) (Order, error)
	// Transition moves the order to status to and applies the move's side
	// effects, returning the order afterwards. applied is false when the
	// order was already in status to (a retried transition: nothing
	// changes). The safe strategy refuses a move the state machine does not
	// allow with a *TransitionError, and a reservation the stock cannot
	// cover with ErrOutOfStock; naive writes whatever it is asked.
	Transition(ctx context.Context, ref OrderRef, to OrderStatus) (order Order, applied bool, err error)
	// Available returns item's sellable stock, first returning the units
	// of reservations that are overdue (lazy expiry: see OrderOptions).
	Available(ctx context.Context, item string) (Availability, error)
}

// OrderOptions tunes an order strategy.
type OrderOptions struct {
	// Keys is the run's keyspace; required.
	Keys Keyspace
	// ReservationTTL is how long the safe strategy holds a processing
	// order's units before the reservation expires (default 15 minutes;
	// at least 1 ms).
	//
	// Expiry is lazy, not swept: an overdue reservation's units go back to
	// stock on the next operation that looks at it — a transition or Get
	// of that order, a reservation of its item that finds the stock short,
	// or Available. The return runs in the same script as that read, so it
	// is exact and atomic, it needs no background process that could
	// stall or die, and it leaves no window in which stock is known to be
	// free but not yet sellable. Redis key expiry cannot do it: it runs no
	// code, and keyspace notifications are fire-and-forget pub/sub that a
	// disconnected subscriber misses, which would leak the units for good.
	// The cost: an item nobody touches keeps its overdue units reserved
	// until the next read; a reader of the raw stock key sees them as
	// taken.
	ReservationTTL time.Duration
	// ReleaseBatch bounds how many overdue reservations one release script
	// returns (default 64), so that a script never runs long.
	ReleaseBatch int
	// NaiveStock is the stock strategy the naive strategy deducts with on
	// created → processing (default StockNaive, the seed's reduce_stock);
	// its answer is ignored either way, as in the seed.
	NaiveStock string
	// Now is the naive strategy's clock for created_ms and updated_ms
	// (default time.Now). The safe strategy uses the server's TIME.
	Now func() time.Time
}

// DefaultReservationTTL is OrderOptions.ReservationTTL's default.
const DefaultReservationTTL = 15 * time.Minute

// WithDefaults returns o with zero fields set to their defaults.
func (o OrderOptions) WithDefaults() OrderOptions {
	if o.ReservationTTL <= 0 {
		o.ReservationTTL = DefaultReservationTTL
	}
	if o.ReservationTTL < time.Millisecond {
		o.ReservationTTL = time.Millisecond
	}
	if o.ReleaseBatch <= 0 {
		o.ReleaseBatch = 64
	}
	if o.NaiveStock == "" {
		o.NaiveStock = StockNaive
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// OrderBackend is implemented by backends that offer the order family.
type OrderBackend interface {
	// Orders returns the named strategy (one of OrderStrategies).
	Orders(strategy string, opts OrderOptions) (Orders, error)
}

// OrderKey is the key of one order: prefix + "order:{<item>}:<id>", a hash
// with the OrderField* fields. The hash tag is the item, shared with the
// item's stock, reservations and ledger, so that one script can change all
// four atomically on Redis Cluster.
func OrderKey(k Keyspace, ref OrderRef) string { return k.Tagged("order", ref.Item, ref.ID) }

// ReservationsKey is the key of an item's live reservations (safe
// strategy): prefix + "reservations:{<item>}", a sorted set of order ids
// scored by the reservation's deadline in server milliseconds.
func ReservationsKey(k Keyspace, item string) string { return k.Tagged("reservations", item) }

// LedgerKey is the key of an item's ledger: prefix + "ledger:{<item>}", a
// stream with one entry per money movement: fields order (the order id),
// kind (LedgerCapture or LedgerRefund), amount and qty.
func LedgerKey(k Keyspace, item string) string { return k.Tagged("ledger", item) }

// Ledger entry kinds and fields.
const (
	LedgerCapture = "capture"
	LedgerRefund  = "refund"

	LedgerFieldOrder    = "order"
	LedgerFieldKind     = "kind"
	LedgerFieldAmount   = "amount"
	LedgerFieldQuantity = "qty"
)

// Reply codes of scripts.OrderTransition (and OrderCreate, OrderGet: 1 and
// 0, -1), shared by the backends that decode them.
const (
	OrderCodeApplied  = 1
	OrderCodeAlready  = 0
	OrderCodeNotFound = -1
	OrderCodeIllegal  = -2
	OrderCodeNoStock  = -3
	OrderCodeExpired  = -4
)

// TransitionOutcome turns the reply code of scripts.OrderTransition into
// Transition's answer: applied for OrderCodeApplied, not applied for
// OrderCodeAlready, else the typed error. o is the order the script
// returned and stock the stock it reported with OrderCodeNoStock. Backends
// call it so that both answer identically.
func TransitionOutcome(ref OrderRef, o Order, to OrderStatus, code, stock int64) (applied bool, err error) {
	switch code {
	case OrderCodeApplied:
		return true, nil
	case OrderCodeAlready:
		return false, nil
	case OrderCodeNotFound:
		return false, ErrOrderNotFound
	case OrderCodeIllegal:
		return false, &TransitionError{Order: ref, From: o.Status, To: to}
	case OrderCodeExpired:
		return false, &TransitionError{Order: ref, From: o.Status, To: to, Expired: true}
	case OrderCodeNoStock:
		return false, fmt.Errorf("%w: %d units wanted, %d in stock", ErrOutOfStock, o.Quantity, stock)
	}
	return false, fmt.Errorf("order script replied unknown code %d", code)
}

// OrderMove is one move of an order's life: a Create, a Transition, or the
// lazy expiry of a reservation that another call ran into. A caller whose
// call lost its reply (a time-out, a dropped connection: an outcome
// MayHaveApplied) settles it afterwards by reading the order's record back
// (OrderRecord.Recorded).
type OrderMove string

// Order moves.
const (
	// MoveCreate stores the order in status created.
	MoveCreate OrderMove = "create"
	// MoveReserve is created → processing: the units leave stock.
	MoveReserve OrderMove = "reserve"
	// MovePay is processing → paid: a ledger capture.
	MovePay OrderMove = "pay"
	// MoveComplete is paid → completed.
	MoveComplete OrderMove = "complete"
	// MoveCancel is created|processing → cancelled at a caller's request.
	MoveCancel OrderMove = "cancel"
	// MoveRefund is paid → refunded: a ledger refund, the units back.
	MoveRefund OrderMove = "refund"
	// MoveExpire is processing → cancelled because the reservation ran out,
	// done lazily by whichever call found it overdue.
	MoveExpire OrderMove = "expire"
)

// OrderMoves lists every move, in lifecycle order.
func OrderMoves() []OrderMove {
	return []OrderMove{MoveCreate, MoveReserve, MovePay, MoveComplete, MoveCancel, MoveRefund, MoveExpire}
}

// MoveTo returns the move a Transition to status to makes ("" for
// created, which only Create makes).
func MoveTo(to OrderStatus) OrderMove {
	switch to {
	case StatusProcessing:
		return MoveReserve
	case StatusPaid:
		return MovePay
	case StatusCompleted:
		return MoveComplete
	case StatusCancelled:
		return MoveCancel
	case StatusRefunded:
		return MoveRefund
	}
	return ""
}

// OrderRecord is what the server holds of one order: its hash, if any,
// and its entries in the item's ledger.
type OrderRecord struct {
	// Order is the order hash, decoded; zero when Found is false.
	Order Order
	// Found reports whether the order hash exists.
	Found bool
	// Captures and Refunds count the order's ledger entries of each kind;
	// Captured and Refunded sum their amounts.
	Captures, Refunds  int64
	Captured, Refunded int64
}

// AddLedger adds one ledger entry of the order (kind LedgerCapture or
// LedgerRefund) to the record; it reports false for another kind.
func (r *OrderRecord) AddLedger(kind string, amount int64) bool {
	switch kind {
	case LedgerCapture:
		r.Captures++
		r.Captured += amount
	case LedgerRefund:
		r.Refunds++
		r.Refunded += amount
	default:
		return false
	}
	return true
}

// Recorded reports whether the record shows that move m happened to the
// order. The safe strategy writes each move's record in the same script as
// the status change, so for it the answer is exact, whatever became of
// the reply:
//
//	create    the order hash exists
//	reserve   reserved_until_ms is set (no later move clears it)
//	pay       the ledger holds a capture for the order
//	complete  the status is completed (a final status)
//	cancel    the status is cancelled with cancel_reason requested (final)
//	refund    the ledger holds a refund for the order
//	expire    the status is cancelled with cancel_reason expired (final)
//
// The naive strategy runs a move as several commands (the status HSET,
// then the side effect) and records no reservation or cancel reason: only
// its create, one HSET, can be read back this way, and a lost reply of
// any other naive move may have applied in part.
func (r OrderRecord) Recorded(m OrderMove) bool {
	o := r.Order
	switch m {
	case MoveCreate:
		return r.Found
	case MoveReserve:
		return r.Found && !o.ReservedUntil.IsZero()
	case MovePay:
		return r.Captures > 0
	case MoveComplete:
		return r.Found && o.Status == StatusCompleted
	case MoveCancel:
		return r.Found && o.Status == StatusCancelled && o.CancelReason == CancelRequested
	case MoveRefund:
		return r.Refunds > 0
	case MoveExpire:
		return r.Found && o.Status == StatusCancelled && o.CancelReason == CancelExpired
	}
	return false
}
