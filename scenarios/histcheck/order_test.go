package histcheck

import (
	"context"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// create is a create of order 7 by copy c over [call, ret] (ms): told
// "new order" (isNew) or the order's status st.
func create(c, call, ret int64, isNew bool, st impl.OrderStatus) history.Entry {
	return history.Entry{Kind: OrderCreate, Key: 7, In2: c, Call: call * 1e6, Return: ret * 1e6, OK: isNew, Out: OrderStatusCode(st), Client: int32(max(c, 0))}
}

// move is a transition of order 7 to `to` by copy c, answered code with
// status st.
func move(c int64, to impl.OrderStatus, call, ret int64, code int64, st impl.OrderStatus) history.Entry {
	return history.Entry{Kind: OrderTransition, Key: 7, In: OrderStatusCode(to), In2: c, Call: call * 1e6, Return: ret * 1e6, Out: code, Out2: OrderStatusCode(st), Client: int32(max(c, 0))}
}

func TestOrderModel(t *testing.T) {
	const (
		created    = impl.StatusCreated
		processing = impl.StatusProcessing
		paid       = impl.StatusPaid
		cancelled  = impl.StatusCancelled
		refunded   = impl.StatusRefunded
	)
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		ops     []history.Entry
		want    string
		witness string
	}{
		{"safe copies", 0, []history.Entry{
			create(0, 0, 2, true, created), create(1, 1, 3, false, created), create(2, 1, 6, false, processing),
			move(0, processing, 3, 5, OrderApplied, processing), move(1, processing, 4, 6, OrderAlready, processing),
		}, result.HistoryLinearizable, ""},
		{"two creates told new", 0, []history.Entry{create(0, 0, 2, true, created), create(1, 1, 3, true, created)},
			result.HistoryNotLinearizable, `two creates of order o-7 (copy 0 and copy 1) were both told "new order"`},
		{"two reservations applied", 0, []history.Entry{
			create(0, 0, 1, true, created), move(0, processing, 2, 4, OrderApplied, processing), move(1, processing, 2, 5, OrderApplied, processing),
		}, result.HistoryNotLinearizable, "two reserve moves of order o-7 (copy 0 and copy 1) were both told applied"},
		{"pay and cancel both applied", 0, []history.Entry{
			create(-1, 0, 1, true, created), move(-1, processing, 2, 3, OrderApplied, processing),
			move(-1, paid, 4, 6, OrderApplied, paid), move(-1, cancelled, 4, 7, OrderApplied, cancelled),
		}, result.HistoryNotLinearizable, "told both paid (pay applied) and cancelled (cancel applied)"},
		{"pay wins, cancel refused, refund", 0, []history.Entry{
			create(-1, 0, 1, true, created), move(-1, processing, 2, 3, OrderApplied, processing),
			move(-1, paid, 4, 6, OrderApplied, paid), move(-1, cancelled, 4, 7, OrderIllegal, paid),
			move(-1, refunded, 8, 9, OrderApplied, refunded),
		}, result.HistoryLinearizable, ""},
		{"cancel wins, pay refused", 0, []history.Entry{
			create(-1, 0, 1, true, created), move(-1, processing, 2, 3, OrderApplied, processing),
			move(-1, paid, 4, 6, OrderIllegal, cancelled), move(-1, cancelled, 4, 7, OrderApplied, cancelled),
		}, result.HistoryLinearizable, ""},
		{"refused with a status it never had", 0, []history.Entry{
			create(-1, 0, 1, true, created), move(-1, processing, 2, 3, OrderApplied, processing),
			move(-1, cancelled, 4, 5, OrderIllegal, paid),
		}, result.HistoryNotLinearizable, "refused, the order is paid"},
		{"out of stock leaves it created", 0, []history.Entry{
			create(0, 0, 1, true, created), move(0, processing, 2, 3, OrderNoStock, created), create(1, 4, 5, false, created),
		}, result.HistoryLinearizable, ""},
		{"out of stock once processing", 0, []history.Entry{
			create(0, 0, 1, true, created), move(0, processing, 2, 3, OrderApplied, processing), move(1, processing, 4, 5, OrderNoStock, created),
		}, result.HistoryNotLinearizable, "out of stock"},
		{"a lost create that happened", 0, []history.Entry{
			lost(create(0, 0, 1, true, created)), move(0, processing, 2, 3, OrderApplied, processing),
		}, result.HistoryLinearizable, ""},
		{"a lost create that did not happen", 0, []history.Entry{
			lost(create(0, 0, 1, true, created)), move(0, processing, 2, 3, OrderNotFound, ""), create(1, 4, 5, true, created),
		}, result.HistoryLinearizable, ""},
		{"a lost reservation that happened", 0, []history.Entry{
			create(0, 0, 1, true, created), lost(move(0, processing, 2, 3, OrderApplied, processing)), move(0, paid, 4, 5, OrderApplied, paid),
		}, result.HistoryLinearizable, ""},
		{"a lost pay cannot make a cancel legal twice", 0, []history.Entry{
			create(0, 0, 1, true, created), move(0, processing, 2, 3, OrderApplied, processing), lost(move(0, paid, 4, 5, OrderApplied, paid)),
			move(1, cancelled, 6, 7, OrderApplied, cancelled), move(1, refunded, 8, 9, OrderApplied, refunded),
		}, result.HistoryNotLinearizable, ""},
		{"an expired reservation", 100 * time.Millisecond, []history.Entry{
			create(0, 0, 1, true, created), move(0, processing, 2, 3, OrderApplied, processing), move(0, paid, 200, 201, OrderExpired, cancelled),
			move(1, cancelled, 202, 203, OrderAlready, cancelled),
		}, result.HistoryLinearizable, ""},
		{"expired by another call", 100 * time.Millisecond, []history.Entry{
			create(0, 0, 1, true, created), move(0, processing, 2, 3, OrderApplied, processing), move(0, paid, 200, 201, OrderIllegal, cancelled),
		}, result.HistoryLinearizable, ""},
		{"expired too soon", 100 * time.Millisecond, []history.Entry{
			create(0, 0, 1, true, created), move(0, processing, 2, 3, OrderApplied, processing), move(0, paid, 50, 51, OrderExpired, cancelled),
		}, result.HistoryNotLinearizable, "reservation expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Order(tc.ttl, func(k int64) string { return "o-7" })
			h := Check(context.Background(), m, tc.ops, 0, Options{Timeout: 5 * time.Second})
			wantHistory(t, h, len(tc.ops), tc.want, "order o-7", tc.witness)
		})
	}
}

func TestOrderStatusCode(t *testing.T) {
	for _, s := range impl.OrderStatuses() {
		if c := OrderStatusCode(s); c <= 0 || orderStatus(c) != s {
			t.Fatalf("status %s numbered %d, back %s", s, c, orderStatus(c))
		}
	}
	if OrderStatusCode("") != 0 || OrderStatusCode("bogus") != 0 {
		t.Fatal("unknown statuses must number 0")
	}
}
