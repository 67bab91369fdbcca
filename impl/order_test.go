package impl

import (
	"testing"
	"time"
)

func TestMoveTo(t *testing.T) {
	for _, tc := range []struct {
		to   OrderStatus
		want OrderMove
	}{
		{StatusCreated, ""},
		{StatusProcessing, MoveReserve},
		{StatusPaid, MovePay},
		{StatusCompleted, MoveComplete},
		{StatusCancelled, MoveCancel},
		{StatusRefunded, MoveRefund},
		{"nope", ""},
	} {
		if got := MoveTo(tc.to); got != tc.want {
			t.Errorf("MoveTo(%q) = %q, want %q", tc.to, got, tc.want)
		}
	}
}

func TestOrderRecordRecorded(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	order := func(s OrderStatus, reserved bool, reason string) Order {
		o := Order{Item: "i", ID: "o", Quantity: 1, Amount: 10, Status: s, CancelReason: reason}
		if reserved {
			o.ReservedUntil = at
		}
		return o
	}
	for _, tc := range []struct {
		name   string
		record OrderRecord
		want   []OrderMove
	}{
		{"absent", OrderRecord{}, nil},
		{"created", OrderRecord{Found: true, Order: order(StatusCreated, false, "")}, []OrderMove{MoveCreate}},
		{"processing", OrderRecord{Found: true, Order: order(StatusProcessing, true, "")}, []OrderMove{MoveCreate, MoveReserve}},
		{"paid", OrderRecord{Found: true, Order: order(StatusPaid, true, ""), Captures: 1, Captured: 10}, []OrderMove{MoveCreate, MoveReserve, MovePay}},
		{"completed", OrderRecord{Found: true, Order: order(StatusCompleted, true, ""), Captures: 1, Captured: 10}, []OrderMove{MoveCreate, MoveReserve, MovePay, MoveComplete}},
		{"refunded", OrderRecord{Found: true, Order: order(StatusRefunded, true, ""), Captures: 1, Captured: 10, Refunds: 1, Refunded: 10}, []OrderMove{MoveCreate, MoveReserve, MovePay, MoveRefund}},
		{"cancelled unreserved", OrderRecord{Found: true, Order: order(StatusCancelled, false, CancelRequested)}, []OrderMove{MoveCreate, MoveCancel}},
		{"cancelled reserved", OrderRecord{Found: true, Order: order(StatusCancelled, true, CancelRequested)}, []OrderMove{MoveCreate, MoveReserve, MoveCancel}},
		{"expired", OrderRecord{Found: true, Order: order(StatusCancelled, true, CancelExpired)}, []OrderMove{MoveCreate, MoveReserve, MoveExpire}},
		{"ledger without hash", OrderRecord{Captures: 1, Captured: 10}, []OrderMove{MovePay}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[OrderMove]bool{}
			for _, m := range tc.want {
				want[m] = true
			}
			for _, m := range OrderMoves() {
				if got := tc.record.Recorded(m); got != want[m] {
					t.Errorf("Recorded(%s) = %v, want %v", m, got, want[m])
				}
			}
		})
	}
}

func TestOrderRecordAddLedger(t *testing.T) {
	var r OrderRecord
	for _, e := range []struct {
		kind   string
		amount int64
		ok     bool
	}{{LedgerCapture, 10, true}, {LedgerRefund, 10, true}, {LedgerCapture, 5, true}, {"chargeback", 1, false}} {
		if got := r.AddLedger(e.kind, e.amount); got != e.ok {
			t.Errorf("AddLedger(%q) = %v, want %v", e.kind, got, e.ok)
		}
	}
	if r.Captures != 2 || r.Captured != 15 || r.Refunds != 1 || r.Refunded != 10 {
		t.Errorf("record %+v", r)
	}
}
