package scenarios

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// This file turns the order scenarios' calls into history entries for the
// order state machine model (histcheck.Order), one partition per order.

// orderModelName is the order model's name in a cell's history object.
const orderModelName = "order state machine"

// orderHistoryModel is the model of duplicate-order's and pay-cancel's
// orders "o-<key>", opened with opts (its reservation TTL).
func orderHistoryModel(opts impl.OrderOptions) histcheck.Model {
	return histcheck.Order(opts.WithDefaults().ReservationTTL, func(k int64) string { return "o-" + strconv.FormatInt(k, 10) })
}

// orderCall is one order call as its client saw it.
type orderCall struct {
	call, ret int64
	order     impl.Order
	ok        bool // created, or applied
	err       error
}

// orderCreateEntry is the entry of a Create of order key (copy: the
// submission's copy, -1 for none); ok is false when the call tells nothing
// (it failed and surely did not apply, or its answer is not the model's).
func orderCreateEntry(key, copy int64, c orderCall, classify func(error) string) (history.Entry, bool) {
	e := history.Entry{Kind: histcheck.OrderCreate, Key: key, In2: copy, Call: c.call, Return: c.ret}
	switch {
	case c.err == nil:
		e.OK, e.Out = c.ok, histcheck.OrderStatusCode(c.order.Status)
	case impl.MayHaveApplied(classify(c.err)):
		e.Unknown = true
	default:
		return e, false
	}
	return e, true
}

// orderMoveEntry is the entry of a Transition of order key to status to,
// as orderCreateEntry.
func orderMoveEntry(key, copy int64, to impl.OrderStatus, c orderCall, classify func(error) string) (history.Entry, bool) {
	e := history.Entry{Kind: histcheck.OrderTransition, Key: key, In: histcheck.OrderStatusCode(to), In2: copy, Call: c.call, Return: c.ret}
	var te *impl.TransitionError
	switch {
	case c.err == nil && c.ok:
		e.Out, e.Out2 = histcheck.OrderApplied, histcheck.OrderStatusCode(c.order.Status)
	case c.err == nil:
		e.Out, e.Out2 = histcheck.OrderAlready, histcheck.OrderStatusCode(c.order.Status)
	case errors.As(c.err, &te) && te.Expired:
		e.Out, e.Out2 = histcheck.OrderExpired, histcheck.OrderStatusCode(impl.StatusCancelled)
	case errors.As(c.err, &te):
		e.Out, e.Out2 = histcheck.OrderIllegal, histcheck.OrderStatusCode(te.From)
	case errors.Is(c.err, impl.ErrOutOfStock):
		e.Out, e.Out2 = histcheck.OrderNoStock, histcheck.OrderStatusCode(impl.StatusCreated)
	case errors.Is(c.err, impl.ErrOrderNotFound):
		e.Out = histcheck.OrderNotFound
	case impl.MayHaveApplied(classify(c.err)):
		e.Unknown = true
	default:
		return e, false
	}
	return e, true
}

// orderHistory is an order cell's history: checked against the order
// state machine when rec recorded it; else why not — a cell of histOps
// operations over the --history bound, or a run driven by --duration,
// which has no size to record beforehand (nil with --history off).
func orderHistory(ctx context.Context, env *Env, rec *history.Recorder, oopts impl.OrderOptions, duration time.Duration, histOps int64) *result.History {
	hopts := env.Common.History
	switch {
	case rec != nil:
		return histcheck.Check(ctx, orderHistoryModel(oopts), rec.Entries(), rec.Overflow(), hopts)
	case duration == 0:
		return hopts.NotChecked(orderModelName, histOps)
	case hopts.Mode == histcheck.ModeOff:
		return nil
	}
	return &result.History{Model: orderModelName, Result: result.HistoryNotChecked,
		Reason: "a run driven by --duration has no size to record beforehand: give a count instead"}
}
