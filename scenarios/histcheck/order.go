package histcheck

import (
	"fmt"
	"sort"
	"time"

	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
)

// Operations of the order state machine model (Entry.Kind).
const (
	// OrderCreate is a Create of the order Key: OK answered "new order",
	// Out the status of the order the answer carried (OrderStatusCode);
	// In2 the submission's copy (-1: none).
	OrderCreate uint8 = 4
	// OrderTransition is a Transition of the order Key to the status In
	// (OrderStatusCode): Out the answer (an OrderCode*), Out2 the status
	// the answer reported (the order's status afterwards; for an illegal
	// move, the status that refused it); In2 the submission's copy (-1:
	// none).
	OrderTransition uint8 = 5
	// OrderGet is a Get of the order Key: OK found, Out its status.
	OrderGet uint8 = 6
)

// Answers of an OrderTransition (Entry.Out): impl's reply codes.
const (
	OrderApplied  = impl.OrderCodeApplied
	OrderAlready  = impl.OrderCodeAlready
	OrderNotFound = impl.OrderCodeNotFound
	OrderIllegal  = impl.OrderCodeIllegal
	OrderNoStock  = impl.OrderCodeNoStock
	OrderExpired  = impl.OrderCodeExpired
)

// orderStatuses numbers the statuses in entries: 0 is "no order".
var orderStatuses = append([]impl.OrderStatus{""}, impl.OrderStatuses()...)

// OrderStatusCode numbers a status for an entry (0: no order, or a status
// the state machine does not know).
func OrderStatusCode(s impl.OrderStatus) int64 {
	for i, t := range orderStatuses {
		if t == s {
			return int64(i)
		}
	}
	return 0
}

func orderStatus(code int64) impl.OrderStatus {
	if code < 0 || code >= int64(len(orderStatuses)) {
		return impl.OrderStatus(fmt.Sprintf("status#%d", code))
	}
	return orderStatuses[code]
}

// expirySlack is the clock error the time-dependent models allow: the
// server keeps deadlines in whole milliseconds on its own clock, the
// client's times are its monotonic clock.
const expirySlack = 5 * time.Millisecond

// Order is the order state machine model: per order, the documented
// transitions (impl.CanTransition) with their answers — a move the state
// machine allows is applied; a move to the status the order is in is
// answered "already done" and changes nothing; any other move is refused
// with the status that refused it; a reservation the stock cannot cover is
// refused and leaves the order created (the stock itself is the stock
// model's, not this one's). A create makes the order once: every later
// create is answered with the order as it is.
//
// A processing order's reservation expires ttl after it was made (0: never):
// from then on the order may be found cancelled, by the call that finds it
// overdue (answered "expired") or by any earlier one. The expiry is
// modelled from the client's clock, conservatively: the reservation may
// have expired for an operation that returned at least ttl (less a small
// clock slack) after the reservation was called. An operation whose reply
// was lost may or may not have happened, at any time after its call.
func Order(ttl time.Duration, name func(key int64) string) Model {
	m := orderModel{ttl: max(int64(ttl-expirySlack), 0), name: name}
	if ttl <= 0 {
		m.ttl = -1
	}
	return Model{
		Name:          "order state machine",
		Init:          func(int64) any { return orderState{} },
		Step:          func(state any, e history.Entry) []any { return m.step(state.(orderState), e) },
		Describe:      m.describe,
		DescribeState: func(state any) string { return describeOrderState(state.(orderState)) },
		Partition:     func(key int64) string { return "order " + name(key) },
		Explain:       m.explain,
	}
}

type orderModel struct {
	ttl  int64 // ns; -1: reservations never expire
	name func(key int64) string
}

// orderState is an order's status and, when processing, the earliest time
// its reservation was made (for the expiry).
type orderState struct {
	status int64
	since  int64
}

func describeOrderState(s orderState) string {
	if s.status == 0 {
		return "no order"
	}
	return string(orderStatus(s.status))
}

var (
	statusCreated    = OrderStatusCode(impl.StatusCreated)
	statusProcessing = OrderStatusCode(impl.StatusProcessing)
	statusCancelled  = OrderStatusCode(impl.StatusCancelled)
)

// expirable reports whether s's reservation may have expired by the time
// e took effect.
func (m orderModel) expirable(s orderState, e history.Entry) bool {
	return m.ttl >= 0 && s.status == statusProcessing && (e.Unknown || e.Return-s.since >= m.ttl)
}

func (m orderModel) step(s orderState, e history.Entry) []any {
	var out []any
	add := func(st orderState) {
		for _, o := range out {
			if o.(orderState) == st {
				return
			}
		}
		out = append(out, st)
	}
	// The states the operation may find: as it is, or (a reservation that
	// may have expired) cancelled by an earlier call.
	pre := []orderState{s}
	expired := m.expirable(s, e)
	if expired {
		pre = append(pre, orderState{status: statusCancelled})
	}
	for _, p := range pre {
		for _, st := range orderApply(p, e) {
			add(st)
		}
	}
	// Or the operation itself found the reservation overdue: the order is
	// cancelled, and the move answered accordingly.
	if expired {
		c := orderState{status: statusCancelled}
		switch {
		case e.Unknown:
			add(c)
		case e.Kind == OrderTransition && e.In == statusCancelled && e.Out == OrderAlready && e.Out2 == statusCancelled:
			add(c)
		case e.Kind == OrderTransition && e.In != statusCancelled && e.Out == OrderExpired:
			add(c)
		case e.Kind == OrderGet && e.OK && e.Out == statusCancelled:
			add(c)
		}
	}
	return out
}

// orderApply returns the states e can lead to from p (none when its answer
// is impossible there).
func orderApply(p orderState, e history.Entry) []orderState {
	moved := func(to int64) orderState {
		st := orderState{status: to}
		if to == statusProcessing {
			st.since = e.Call
		}
		return st
	}
	switch e.Kind {
	case OrderCreate:
		switch {
		case e.Unknown && p.status == 0:
			return []orderState{p, moved(statusCreated)}
		case e.Unknown:
			return []orderState{p}
		case e.OK && p.status == 0 && e.Out == statusCreated:
			return []orderState{moved(statusCreated)}
		case !e.OK && p.status != 0 && e.Out == p.status:
			return []orderState{p}
		}
	case OrderGet:
		switch {
		case e.Unknown:
			return []orderState{p}
		case e.OK && p.status != 0 && e.Out == p.status:
			return []orderState{p}
		case !e.OK && p.status == 0:
			return []orderState{p}
		}
	case OrderTransition:
		to := e.In
		allowed := p.status != 0 && impl.CanTransition(orderStatus(p.status), orderStatus(to))
		if e.Unknown {
			if allowed {
				return []orderState{p, moved(to)}
			}
			return []orderState{p}
		}
		switch e.Out {
		case OrderApplied:
			if allowed && e.Out2 == to {
				return []orderState{moved(to)}
			}
		case OrderAlready:
			if p.status != 0 && p.status == to && e.Out2 == to {
				return []orderState{p}
			}
		case OrderNotFound:
			if p.status == 0 {
				return []orderState{p}
			}
		case OrderIllegal:
			if p.status != 0 && p.status != to && !allowed && e.Out2 == p.status {
				return []orderState{p}
			}
		case OrderNoStock:
			if p.status == statusCreated && to == statusProcessing {
				return []orderState{p}
			}
		}
	}
	return nil
}

func (m orderModel) describe(e history.Entry) string {
	who := m.name(e.Key)
	if e.In2 >= 0 {
		who += fmt.Sprintf(" copy %d", e.In2)
	}
	switch e.Kind {
	case OrderCreate:
		switch {
		case e.Unknown:
			return who + ": create → reply lost (may or may not have happened)"
		case e.OK:
			return who + ": create → \"new order\""
		}
		return fmt.Sprintf("%s: create → exists, %s", who, orderStatus(e.Out))
	case OrderGet:
		switch {
		case e.Unknown:
			return who + ": get → reply lost"
		case e.OK:
			return fmt.Sprintf("%s: get → %s", who, orderStatus(e.Out))
		}
		return who + ": get → not found"
	}
	move := fmt.Sprintf("%s: %s", who, impl.MoveTo(orderStatus(e.In)))
	if e.Unknown {
		return move + " → reply lost (may or may not have happened)"
	}
	switch e.Out {
	case OrderApplied:
		return fmt.Sprintf("%s → applied (%s)", move, orderStatus(e.Out2))
	case OrderAlready:
		return fmt.Sprintf("%s → already %s", move, orderStatus(e.Out2))
	case OrderNotFound:
		return move + " → no such order"
	case OrderIllegal:
		return fmt.Sprintf("%s → refused, the order is %s", move, orderStatus(e.Out2))
	case OrderNoStock:
		return move + " → refused, out of stock"
	case OrderExpired:
		return move + " → refused, the reservation expired (now cancelled)"
	}
	return fmt.Sprintf("%s → answer %d", move, e.Out)
}

// explain finds the answers no serial order of one order's life can give,
// each a proof by itself: two creates both told "new order" (an order is
// created once), two moves to one status both applied (the state machine
// has no cycle, so no status is entered twice), and moves applied to two
// statuses no single life reaches both of (paid and cancelled, completed
// and refunded). It reports the one complete soonest.
func (m orderModel) explain(ops []history.Entry) (string, []history.Entry) {
	var told []history.Entry // creates told "new", moves told applied
	for _, e := range ops {
		if e.Unknown {
			continue
		}
		if e.Kind == OrderCreate && e.OK || e.Kind == OrderTransition && e.Out == OrderApplied {
			told = append(told, e)
		}
	}
	sort.Slice(told, func(i, j int) bool { return told[i].Return < told[j].Return })
	for j := 1; j < len(told); j++ {
		for i := range j {
			if text := m.clash(told[i], told[j]); text != "" {
				return text, []history.Entry{told[i], told[j]}
			}
		}
	}
	return "", nil
}

// clash says why a and b (each a create told "new" or a move applied)
// cannot both be true of one order ("" when they can).
func (m orderModel) clash(a, b history.Entry) string {
	who := func(e history.Entry) string {
		if e.In2 >= 0 {
			return fmt.Sprintf("copy %d", e.In2)
		}
		return fmt.Sprintf("client %d", e.Client)
	}
	name := m.name(a.Key)
	switch {
	case a.Kind == OrderCreate && b.Kind == OrderCreate:
		return fmt.Sprintf("two creates of order %s (%s and %s) were both told \"new order\"", name, who(a), who(b))
	case a.Kind != OrderTransition || b.Kind != OrderTransition:
		return ""
	case a.In == b.In:
		return fmt.Sprintf("two %s moves of order %s (%s and %s) were both told applied: it was %s twice",
			impl.MoveTo(orderStatus(a.In)), name, who(a), who(b), orderStatus(a.In))
	case !onePath(a.In, b.In):
		return fmt.Sprintf("order %s was told both %s (%s applied) and %s (%s applied), which no order's life reaches both of",
			name, orderStatus(a.In), impl.MoveTo(orderStatus(a.In)), orderStatus(b.In), impl.MoveTo(orderStatus(b.In)))
	}
	return ""
}

// onePath reports whether one life of an order can enter both statuses
// (one is reachable from the other).
func onePath(a, b int64) bool {
	return reaches(orderStatus(a), orderStatus(b)) || reaches(orderStatus(b), orderStatus(a))
}

func reaches(from, to impl.OrderStatus) bool {
	if from == to {
		return true
	}
	for _, s := range impl.OrderStatuses() {
		if impl.CanTransition(from, s) && reaches(s, to) {
			return true
		}
	}
	return false
}
