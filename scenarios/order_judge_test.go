package scenarios

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// summaryMarks says how an invariant shows in a summary: broken must match
// when it is broken and must not when it holds; claim (optional) is the
// summary's statement that it holds, which must not appear when it is
// broken.
type summaryMarks struct {
	broken, claim *regexp.Regexp
}

// checkSummaryAgrees fails t when the cell's summary contradicts one of
// its invariants, and when the broken invariants are not exactly want.
func checkSummaryAgrees(t *testing.T, cell result.Cell, marks map[string]summaryMarks, want []string) {
	t.Helper()
	var got []string
	for _, inv := range cell.Invariants {
		m, ok := marks[inv.Name]
		if !ok {
			t.Errorf("invariant %q has no summary marks in the test", inv.Name)
			continue
		}
		switch {
		case !inv.Holds:
			got = append(got, inv.Name)
			if !m.broken.MatchString(cell.Summary) {
				t.Errorf("%q is broken (%s) but the summary does not say so (/%s/): %s", inv.Name, inv.Detail, m.broken, cell.Summary)
			}
			if m.claim != nil && m.claim.MatchString(cell.Summary) {
				t.Errorf("%q is broken (%s) but the summary claims it holds (/%s/): %s", inv.Name, inv.Detail, m.claim, cell.Summary)
			}
		case m.broken.MatchString(cell.Summary):
			t.Errorf("%q holds but the summary says it broke (/%s/): %s", inv.Name, m.broken, cell.Summary)
		}
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("broken invariants %q, want %q\nsummary: %s", got, want, cell.Summary)
	}
}

var dupMarks = map[string]summaryMarks{
	"one stock deduction per order":        {broken: regexp.MustCompile(`taken twice or more|deductions lost|the stock never gave`), claim: regexp.MustCompile(`\d+ created, \d+ reserved`)},
	"one confirmation per order":           {broken: regexp.MustCompile(`for \d+ orders on the server`), claim: regexp.MustCompile(`\d+ created, \d+ reserved`)},
	"no order reset to created":            {broken: regexp.MustCompile(`reset to created`)},
	"final stock >= 0":                     {broken: regexp.MustCompile(`final stock -\d`)},
	"one reservation per processing order": {broken: regexp.MustCompile(`reservations for \d+ processing orders`)},
}

// TestDuplicateOrderSummaryAgrees flips one figure at a time and checks
// that the invariants and the summary, both written from the figures,
// agree.
func TestDuplicateOrderSummaryAgrees(t *testing.T) {
	healthy := func() dupFigures {
		return dupFigures{
			safe: true, copies: 4, submitted: 200, onServer: 200, submissions: 800, confirmed: 200, reserved: 200,
			processing: 200, reservations: 200, matched: 200, initial: 4000, final: 3800, held: 200,
			lost: settlement{settles: true},
		}
	}
	for _, tc := range []struct {
		name   string
		flip   func(f *dupFigures)
		broken []string
		says   string // in the summary
	}{
		{"healthy", func(*dupFigures) {}, nil, "200 orders submitted 4× each: 200 created, 200 reserved (0 refused for stock), stock fell by 200 units for 200 held"},
		{"taken twice", func(f *dupFigures) { f.final = 3700 }, []string{"one stock deduction per order"}, "100 units taken twice or more"},
		{"held beyond stock", func(f *dupFigures) { f.final = 3850 }, []string{"one stock deduction per order"}, "50 units held that the stock never gave"},
		{"naive races", func(f *dupFigures) { f.safe = false; f.final = 3850 }, []string{"one stock deduction per order"}, "50 deductions lost to reduce_stock's races"},
		{"confirmed twice", func(f *dupFigures) { f.confirmed = 250 }, []string{"one confirmation per order"}, `250 answered "new order" for 200 orders on the server`},
		{"creator lost", func(f *dupFigures) { f.confirmed, f.createdLost = 199, 1 }, nil, "200 created"},
		{"creator lost and answered", func(f *dupFigures) { f.createdLost = 1 }, []string{"one confirmation per order"}, "1 lost replies had created their order for 200 orders"},
		{"reset", func(f *dupFigures) { f.reset = 3 }, []string{"no order reset to created"}, "3 orders reset to created"},
		{"negative stock", func(f *dupFigures) { f.initial, f.final = 195, -5 }, []string{"final stock >= 0"}, "final stock -5"},
		{"stray reservation", func(f *dupFigures) { f.reservations = 201 }, []string{"one reservation per processing order"}, "201 reservations for 200 processing orders"},
		{"fewer on the server", func(f *dupFigures) {
			f.onServer, f.confirmed, f.processing, f.reservations, f.matched, f.final, f.held = 40, 40, 40, 40, 40, 3960, 40
			f.lost.failed = 640
		}, nil, "200 orders submitted 4× each (40 on the server): 40 created"},
		{"lost replies", func(f *dupFigures) { f.lost.lost, f.lost.happened = 12, 3 }, nil, "12 replies lost, 3 of those moves had happened"},
		{"naive lost replies", func(f *dupFigures) { f.lost.settles, f.lost.lost = false, 12 }, nil, "12 replies lost, not settled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			tc.flip(&f)
			var cell result.Cell
			f.judge(&cell)
			checkSummaryAgrees(t, cell, dupMarks, tc.broken)
			if !strings.Contains(cell.Summary, tc.says) {
				t.Errorf("summary does not say %q: %s", tc.says, cell.Summary)
			}
			if got := cell.Figures["units_taken_extra"]; got != float64(f.extra()) {
				t.Errorf("figure units_taken_extra %v, want %d", got, f.extra())
			}
		})
	}
}

var payCancelMarks = map[string]summaryMarks{
	"no cancelled order has money captured":                  {broken: regexp.MustCompile(`cancelled orders kept`)},
	"no paid order has its stock returned":                   {broken: regexp.MustCompile(`stock \d+ ≠`), claim: regexp.MustCompile(`stock \d+ ==`)},
	"every paid order captured exactly once":                 {broken: regexp.MustCompile(`not captured once`)},
	"one refund per refunded order, for the amount captured": {broken: regexp.MustCompile(`without one refund`)},
	"ledger == paid orders' amounts":                         {broken: regexp.MustCompile(`≠ paid orders'`), claim: regexp.MustCompile(`== paid orders'`)},
	"every order settled paid, cancelled or refunded":        {broken: regexp.MustCompile(`still processing`)},
}

// TestPayCancelSummaryAgrees is TestDuplicateOrderSummaryAgrees for
// pay-cancel, the refund path's figures included.
func TestPayCancelSummaryAgrees(t *testing.T) {
	healthy := func() payCancelFigures {
		return payCancelFigures{
			submitted: 200, placed: 200, paysApplied: 89, cancelsApplied: 111, refused: 200, refundsAsked: 20, refundsApplied: 20,
			orders: 200, paid: 69, cancelled: 111, refunded: 20,
			ledgerNet: 69 * 1999, ledgerCaptured: 89 * 1999, ledgerRefunded: 20 * 1999, ledgerExpected: 69 * 1999,
			initial: 4000, final: 3931, held: 69, refundedUnits: 20,
			lost: settlement{settles: true},
		}
	}
	for _, tc := range []struct {
		name   string
		flip   func(f *payCancelFigures)
		broken []string
		says   string
	}{
		{"healthy", func(*payCancelFigures) {}, nil, "200 orders, pay and cancel raced on each: 69 paid, 111 cancelled, 20 refunded, 200 losing moves refused; stock 3931 == 4000 - 69 held; ledger 137931 cents == paid orders' 137931"},
		{"cancelled with money", func(f *payCancelFigures) { f.cancelledWithMoney, f.cancelledMoney = 2, 3998 }, []string{"no cancelled order has money captured"}, "2 cancelled orders kept 3998 cents"},
		{"stock returned for paid", func(f *payCancelFigures) { f.final = 3941 }, []string{"no paid order has its stock returned"}, "stock 3941 ≠ 4000 - 69 held — 10 units went back"},
		{"refund kept the units", func(f *payCancelFigures) { f.final = 3911 }, []string{"no paid order has its stock returned"}, "20 units of cancelled or refunded orders never went back"},
		{"captured twice", func(f *payCancelFigures) { f.capturedTwice = 1 }, []string{"every paid order captured exactly once"}, "0 paid orders not captured once, 1 captured twice"},
		{"refund missing", func(f *payCancelFigures) { f.refundWrong = 1 }, []string{"one refund per refunded order, for the amount captured"}, "1 refunded orders without one refund of their capture"},
		{"refund on a paid order", func(f *payCancelFigures) { f.refundStray = 1 }, []string{"one refund per refunded order, for the amount captured"}, "1 refunds on orders not refunded"},
		{"ledger off", func(f *payCancelFigures) { f.ledgerNet -= 1999 }, []string{"ledger == paid orders' amounts"}, "ledger 135932 cents ≠ paid orders' 137931"},
		{"stray ledger entry", func(f *payCancelFigures) { f.strayLedger = 1 }, []string{"ledger == paid orders' amounts"}, "(1 entries for unknown orders)"},
		{"unsettled", func(f *payCancelFigures) { f.unsettled, f.reservationsLeft = 1, 1 }, []string{"every order settled paid, cancelled or refunded"}, "1 orders still processing, 1 reservations left"},
		{"left aside", func(f *payCancelFigures) {
			f.leftAside, f.lost.lost, f.lost.happened = 3, 5, 2
		}, nil, "5 replies lost, 2 of those moves had happened"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			tc.flip(&f)
			var cell result.Cell
			f.judge(&cell)
			checkSummaryAgrees(t, cell, payCancelMarks, tc.broken)
			if !strings.Contains(cell.Summary, tc.says) {
				t.Errorf("summary does not say %q: %s", tc.says, cell.Summary)
			}
		})
	}
}

var checkoutMarks = map[string]summaryMarks{
	"orders sold within stock":                          {broken: regexp.MustCompile(`\(\d+ allowed\)`)},
	"sold × quantity == units deducted":                 {broken: regexp.MustCompile(`oversold by|deducted that no sale holds`)},
	"final stock >= 0":                                  {broken: regexp.MustCompile(`final stock -\d`)},
	"stock + sold == initial after reservations expire": {broken: regexp.MustCompile(`sold \d+ ≠`), claim: regexp.MustCompile(`sold \d+ ==`)},
	"no unpaid order holds units after its TTL":         {broken: regexp.MustCompile(`keep their units`)},
	"ledger == paid and completed orders":               {broken: regexp.MustCompile(`≠ paid and completed`)},
}

// TestCheckoutSummaryAgrees is TestDuplicateOrderSummaryAgrees for
// checkout.
func TestCheckoutSummaryAgrees(t *testing.T) {
	healthy := func() checkoutFigures {
		return checkoutFigures{
			initial: 30, final: 5, quantity: 1, allowed: 30, checkouts: 100, abandoned: 20, noStock: 70,
			orders: 100, completed: 25, cancelled: 75, completedUnits: 25, soldUnits: 25, expired: 5,
			ledgerNet: 25 * 1999, ledgerExpected: 25 * 1999, lost: settlement{settles: true},
		}
	}
	for _, tc := range []struct {
		name   string
		flip   func(f *checkoutFigures)
		broken []string
		says   string
	}{
		{"healthy", func(*checkoutFigures) {}, nil, "100 buyers, 30 units: 25 completed, 70 refused for stock, 5 reservations expired; stock 5 + sold 25 == 30"},
		{"cut short after paying", func(f *checkoutFigures) { f.completed, f.paid = 24, 1 }, nil, "25 sold (24 completed, 1 paid)"},
		{"oversold", func(f *checkoutFigures) {
			f.final, f.completed, f.completedUnits, f.soldUnits, f.ledgerNet, f.ledgerExpected = 0, 81, 81, 81, 81*1999, 81*1999
		}, []string{"orders sold within stock", "sold × quantity == units deducted", "stock + sold == initial after reservations expire"}, "81 orders completed (30 allowed) for 81 units while stock fell by 30 — oversold by 51 units"},
		{"units lost", func(f *checkoutFigures) { f.final = 3 }, []string{"sold × quantity == units deducted", "stock + sold == initial after reservations expire"}, "2 units deducted that no sale holds"},
		{"negative stock", func(f *checkoutFigures) {
			f.initial, f.final = 20, -5
		}, []string{"final stock >= 0"}, "final stock -5"},
		{"unreleased", func(f *checkoutFigures) { f.unsettled, f.reservationsLeft = 2, 2 }, []string{"no unpaid order holds units after its TTL"}, "2 unpaid orders keep their units for good"},
		{"ledger off", func(f *checkoutFigures) { f.ledgerNet = 0 }, []string{"ledger == paid and completed orders"}, "ledger 0 cents ≠ paid and completed orders' 49975"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			tc.flip(&f)
			var cell result.Cell
			f.judge(&cell)
			checkSummaryAgrees(t, cell, checkoutMarks, tc.broken)
			if !strings.Contains(cell.Summary, tc.says) {
				t.Errorf("summary does not say %q: %s", tc.says, cell.Summary)
			}
		})
	}
}

// fakeClasses classifies the settlement tests' errors by their text.
func fakeClasses(err error) string {
	for _, c := range []string{impl.ClassTimeout, impl.ClassConnection, impl.ClassOOM, impl.ClassCanceled} {
		if strings.Contains(err.Error(), c) {
			return c
		}
	}
	return impl.ClassOther
}

func TestOpFailure(t *testing.T) {
	ref := impl.OrderRef{Item: "sku-0", ID: "o-1"}
	for _, tc := range []struct {
		name       string
		errs       []error
		wantClass  string
		lost       int
		failed     int64
		settleable int64
	}{
		{"none", nil, "", 0, 0, 0},
		{"one lost reply", []error{errors.New("timeout")}, impl.ClassTimeout, 1, 0, 1},
		{"two lost replies", []error{errors.New("connection"), errors.New("timeout")}, impl.ClassConnection, 2, 0, 1},
		{"a sure failure wins", []error{errors.New("timeout"), errors.New("oom")}, impl.ClassOOM, 1, 1, 0},
		{"an order answer is no lost reply", []error{impl.ErrIllegalTransition}, impl.ClassOther, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notes := newOrderNotes(1)
			f := newOpFailure(fakeClasses, &notes[0])
			for _, err := range tc.errs {
				f.fail(err, ref, impl.MovePay)
			}
			err := f.end(ref, false, true)
			if (err == nil) != (tc.wantClass == "") || (err != nil && fakeClasses(err) != tc.wantClass) {
				t.Errorf("operation error %v, want class %q", err, tc.wantClass)
			}
			n := notes[0]
			if len(n.lost) != tc.lost || n.failed != tc.failed || n.settleable[tc.wantClass] != tc.settleable {
				t.Errorf("lost %d, failed %d, settleable %v; want %d, %d, %d", len(n.lost), n.failed, n.settleable, tc.lost, tc.failed, tc.settleable)
			}
			if touched := len(n.touched) == 1; touched != (err != nil) {
				t.Errorf("touched %v, operation error %v", n.touched, err)
			}
		})
	}
}

// TestSettle checks each lost reply against the server's record: a move
// the server records happened, once per order and move, unless an answered
// call made it; a naive cell settles nothing; settled operations are
// capped by class at the failures counted, cancellations excluded.
func TestSettle(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	snap := &orderSnapshot{
		orders: []impl.Order{
			{Item: "i", ID: "created", Status: impl.StatusCreated},
			{Item: "i", ID: "reserved", Status: impl.StatusProcessing, ReservedUntil: at},
			{Item: "i", ID: "paid", Status: impl.StatusPaid, ReservedUntil: at},
			{Item: "i", ID: "cancelled", Status: impl.StatusCancelled, CancelReason: impl.CancelRequested, ReservedUntil: at},
		},
		index: map[impl.OrderRef]int{},
		money: map[impl.OrderRef]orderMoney{{Item: "i", ID: "paid"}: {captured: 10, captures: 1}},
	}
	for i, o := range snap.orders {
		snap.index[o.Ref()] = i
	}
	ref := func(id string) impl.OrderRef { return impl.OrderRef{Item: "i", ID: id} }
	notes := newOrderNotes(2)
	notes[0].lost = append(notes[0].lost,
		lostMove{ref: ref("created"), move: impl.MoveCreate, calls: 3},               // one of three made it
		lostMove{ref: ref("reserved"), move: impl.MoveCreate, calls: 2, answered: 1}, // an answered copy made it
		lostMove{ref: ref("created"), move: impl.MoveReserve, calls: 1},              // not recorded
		lostMove{ref: ref("gone"), move: impl.MoveCreate, calls: 1},                  // never created
		lostMove{ref: ref("paid"), move: impl.MovePay, calls: 1},                     // captured
		lostMove{ref: ref("cancelled"), move: impl.MovePay, calls: 1},                // lost the race
		lostMove{ref: ref("cancelled"), move: impl.MoveCancel, calls: 1},             // won it
	)
	notes[0].settleable[impl.ClassTimeout] = 3
	notes[1].settleable[impl.ClassConnection] = 2
	notes[1].settleable[impl.ClassCanceled] = 1
	notes[1].touched = append(notes[1].touched, touchedOrder{ref: ref("created")}, touchedOrder{ref: ref("created"), reached: true})
	stats := &bench.Stats{Errors: map[string]int64{impl.ClassTimeout: 2, impl.ClassConnection: 5, impl.ClassCanceled: 1, impl.ClassOOM: 4}}

	st := settle(snap, notes, true, stats)
	if st.lost != 10 || st.happened != 3 || st.ops != 4 {
		t.Errorf("lost %d, happened %d, ops %d; want 10, 3, 4", st.lost, st.happened, st.ops)
	}
	if got := st.byMove[impl.MoveCreate]; got != [2]int64{6, 1} {
		t.Errorf("create lost/happened %v, want [6 1]", got)
	}
	if got := st.byMove[impl.MovePay]; got != [2]int64{2, 1} {
		t.Errorf("pay lost/happened %v, want [2 1]", got)
	}
	if !st.touched[ref("created")] {
		t.Errorf("touched %v: an answer showed %q processing", st.touched, "created")
	}
	if line := st.line(); line != "10 replies lost, 3 of those moves had happened" {
		t.Errorf("line %q", line)
	}

	naive := settle(snap, notes, false, stats)
	if naive.lost != 10 || naive.happened != 0 || naive.ops != 0 || !strings.Contains(naive.line(), "not settled") {
		t.Errorf("naive: lost %d, happened %d, ops %d, line %q", naive.lost, naive.happened, naive.ops, naive.line())
	}
}

// failingReads is a go-redis hook that refuses the read-back's commands
// (SCAN, XLEN, XRANGE, ZRANGE, HGETALL), as a server that drops the admin
// connection after the run would.
type failingReads struct{}

var readBackCommands = map[string]bool{"scan": true, "xlen": true, "xrange": true, "zrange": true, "hgetall": true}

func (failingReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (failingReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if readBackCommands[cmd.Name()] {
			cmd.SetErr(errInjectedRead)
			return errInjectedRead
		}
		return next(ctx, cmd)
	}
}

func (failingReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if readBackCommands[c.Name()] {
				for _, c := range cmds {
					c.SetErr(errInjectedRead)
				}
				return errInjectedRead
			}
		}
		return next(ctx, cmds)
	}
}

var errInjectedRead = errors.New("injected: connection lost while reading back")

// TestOrderReadBackFailureIsNotAVerdict makes the admin client's reads
// fail after the run: each order scenario returns its cell with the
// measured operations and a JudgementError (the runner's INCONCLUSIVE),
// never a verdict of its own bookkeeping.
func TestOrderReadBackFailureIsNotAVerdict(t *testing.T) {
	for _, tc := range []struct {
		s    Scenario
		size func(s Scenario)
	}{
		{newDuplicateOrder(), func(s Scenario) { s.(*DuplicateOrder).Orders = 30 }},
		{newPayCancel(), func(s Scenario) { s.(*PayCancel).Orders = 30 }},
		{newCheckout(), func(s Scenario) { s.(*Checkout).Buyers, s.(*Checkout).ReservationTTL = 30, 50*time.Millisecond }},
	} {
		for _, strategy := range []string{impl.OrderNaive, impl.OrderSafe} {
			t.Run(tc.s.Name()+"/"+strategy, func(t *testing.T) {
				tc.size(tc.s)
				env := testEnvC(t, impl.GoRedis, 4)
				opt := *env.Admin.(*redis.Client).Options()
				admin := redis.NewClient(&opt)
				t.Cleanup(func() { _ = admin.Close() })
				admin.AddHook(failingReads{})
				env.Admin = admin
				if c, ok := tc.s.(*Checkout); ok {
					c.LockPoll = 5 * time.Millisecond
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cell, err := tc.s.Run(ctx, env, strategy)
				if !errors.Is(err, ErrJudgement) || !errors.Is(err, errInjectedRead) {
					t.Fatalf("error %v, want a JudgementError wrapping the read failure", err)
				}
				if cell.Ops != 30 || cell.Latency.Corrected.Count != 30 {
					t.Errorf("cell measured %d operations (%d in its latency), want 30", cell.Ops, cell.Latency.Corrected.Count)
				}
				if len(cell.Invariants) != 0 || !strings.Contains(cell.Summary, "not judged") {
					t.Errorf("an unjudged cell with %d invariants and summary %q", len(cell.Invariants), cell.Summary)
				}
			})
		}
	}
}
