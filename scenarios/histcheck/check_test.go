package histcheck

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/reports/result"
)

// buy is a purchase of q by buyer b over [call, ret] (ms), told ok and
// out; read is a read of the stock.
func buy(b, q int64, call, ret int64, ok bool, out int64) history.Entry {
	return history.Entry{Kind: StockPurchase, In: q, In2: b, Call: call * 1e6, Return: ret * 1e6, OK: ok, Out: out, Client: int32(b)}
}

func read(call, ret, out int64) history.Entry {
	return history.Entry{Kind: StockRead, In2: -1, Call: call * 1e6, Return: ret * 1e6, Out: out, Client: 99}
}

func lost(e history.Entry) history.Entry { e.Unknown, e.OK, e.Out = true, false, 0; return e }

func stockModel(initial int64) Model {
	return Stock(func(int64) int64 { return initial }, func(int64) string { return "sku-1" })
}

func TestStockModel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial int64
		ops     []history.Entry
		want    string
		witness string // a part of the witness, for a violation
	}{
		{"serial", 2, []history.Entry{buy(1, 1, 0, 1, true, 1), buy(2, 1, 2, 3, true, 0), buy(3, 1, 4, 5, false, 0), read(6, 7, 0)}, result.HistoryLinearizable, ""},
		{"concurrent, either order", 2, []history.Entry{buy(1, 1, 0, 10, true, 0), buy(2, 1, 1, 9, true, 1), read(2, 3, 1)}, result.HistoryLinearizable, ""},
		{"two buyers told the same remainder", 5, []history.Entry{buy(17, 1, 0, 10, true, 4), buy(42, 1, 1, 9, true, 4)}, result.HistoryNotLinearizable, "buyers 42 and 17 were both told 4 remained"},
		{"a read below zero", 1, []history.Entry{buy(1, 1, 0, 1, true, 0), read(2, 3, -29)}, result.HistoryNotLinearizable, "a read of the stock saw -29"},
		{"a refusal while stock was there", 3, []history.Entry{buy(1, 1, 0, 1, true, 2), buy(2, 1, 2, 3, false, 2)}, result.HistoryNotLinearizable, "no serial order"},
		{"a stale read after a newer one", 3, []history.Entry{buy(1, 1, 0, 1, true, 2), read(2, 3, 2), buy(2, 1, 4, 5, true, 1), read(6, 7, 1), read(8, 9, 2)}, result.HistoryNotLinearizable, "read → 2"},
		{"a lost reply that happened", 2, []history.Entry{lost(buy(1, 1, 0, 1, true, 1)), read(2, 3, 1), buy(2, 1, 4, 5, true, 0)}, result.HistoryLinearizable, ""},
		{"a lost reply that did not happen", 2, []history.Entry{lost(buy(1, 1, 0, 1, true, 1)), read(2, 3, 2), buy(2, 1, 4, 5, true, 1)}, result.HistoryLinearizable, ""},
		{"a lost reply happening late", 2, []history.Entry{lost(buy(1, 1, 0, 1, true, 1)), read(2, 3, 2), read(8, 9, 1)}, result.HistoryLinearizable, ""},
		{"a lost reply cannot happen twice", 2, []history.Entry{lost(buy(1, 1, 0, 1, true, 1)), read(2, 3, 0)}, result.HistoryNotLinearizable, "no serial order"},
		{"answered from its record", 3, []history.Entry{{Kind: StockPurchase, In: 1, In2: 1, Return: 5e6, OK: true, Flag: true, Out: 2}, read(6, 7, 2)}, result.HistoryLinearizable, ""},
		{"multi-unit refusal", 5, []history.Entry{buy(1, 3, 0, 1, true, 2), buy(2, 3, 2, 3, false, 2), buy(3, 2, 4, 5, true, 0)}, result.HistoryLinearizable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Check(context.Background(), stockModel(tc.initial), tc.ops, 0, Options{Timeout: 5 * time.Second})
			wantHistory(t, h, len(tc.ops), tc.want, "item sku-1", tc.witness)
		})
	}
}

func TestCheckIncompleteAndTimeout(t *testing.T) {
	m := stockModel(1)
	h := Check(context.Background(), m, []history.Entry{buy(1, 1, 0, 1, true, 0)}, 3, Options{})
	if h.Result != result.HistoryUnknown || !strings.Contains(h.Reason, "3 operations did not fit") {
		t.Fatalf("an overflowed history: %+v", h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h = Check(ctx, m, []history.Entry{buy(1, 1, 0, 1, true, 0)}, 0, Options{})
	if h.Result != result.HistoryUnknown || h.Reason != "the check was interrupted" {
		t.Fatalf("an interrupted check: %+v", h)
	}
}

// TestStockReduction checks, on random small histories, that the reduced
// history is linearizable exactly when the whole one is.
func TestStockReduction(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := stockModel(4)
	legal, illegal := 0, 0
	for range 400 {
		var ops []history.Entry
		for i := range 3 + r.IntN(8) {
			call := r.Int64N(20)
			e := history.Entry{Call: call, Return: call + 1 + r.Int64N(6), Client: int32(i), In2: int64(i), In: 1 + r.Int64N(2), Out: r.Int64N(5)}
			switch r.IntN(4) {
			case 0:
				e.Kind = StockRead
			case 1:
				e.Kind, e.OK = StockPurchase, true
			case 2:
				e.Kind = StockPurchase
			default:
				e.Kind, e.Unknown = StockPurchase, true
			}
			ops = append(ops, e)
		}
		whole := porcupineCheck(m, ops)
		reduced := porcupineCheck(m, reduceStock(ops))
		if whole != reduced {
			t.Fatalf("whole history %v, reduced %v: %+v", whole, reduced, ops)
		}
		if whole {
			legal++
		} else {
			illegal++
		}
	}
	if legal == 0 || illegal == 0 {
		t.Fatalf("%d linearizable and %d not: the cases do not cover both", legal, illegal)
	}
}

func TestDedupeModel(t *testing.T) {
	sub := func(i, call, ret int64, ok bool, holder int64) history.Entry {
		return history.Entry{Kind: DedupeSubmit, Key: 7, In: i, Call: call * 1e6, Return: ret * 1e6, OK: ok, Out: holder, Client: int32(i)}
	}
	req := func(k int64) string { return "r7" }
	window := int64(time.Second)
	for _, tc := range []struct {
		name string
		ops  []history.Entry
		want string
	}{
		{"first accepted, repeats name it", []history.Entry{sub(0, 0, 5, true, 0), sub(1, 0, 5, false, 0), sub(2, 1, 6, false, 0)}, result.HistoryLinearizable},
		{"two accepted", []history.Entry{sub(0, 0, 5, true, 0), sub(1, 0, 5, true, 1)}, result.HistoryNotLinearizable},
		{"refused naming another copy", []history.Entry{sub(0, 0, 5, true, 0), sub(1, 6, 7, false, 2)}, result.HistoryNotLinearizable},
		{"accepted again after the window", []history.Entry{sub(0, 0, 5, true, 0), sub(1, 2000, 2001, true, 1)}, result.HistoryLinearizable},
		{"a lost claim", []history.Entry{lostSub(sub(0, 0, 5, true, 0)), sub(1, 6, 7, false, 0)}, result.HistoryLinearizable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Check(context.Background(), Dedupe(window, req), tc.ops, 0, Options{Timeout: 5 * time.Second})
			if h.Result != tc.want {
				t.Fatalf("result %s, want %s: %+v", h.Result, tc.want, h)
			}
			if tc.want == result.HistoryNotLinearizable && h.Witness == "" {
				t.Fatalf("no witness: %+v", h)
			}
		})
	}
}

// porcupineCheck checks ops against m with no time limit, as Check does.
func porcupineCheck(m Model, ops []history.Entry) bool {
	return porcupine.CheckOperations(porcupineModel(m, 0), operations(m, ops, pending))
}

func lostSub(e history.Entry) history.Entry { e.Unknown, e.OK = true, false; return e }

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		ops  int64
		want bool
	}{
		{Options{}, DefaultBound, true},
		{Options{}, DefaultBound + 1, false},
		{Options{Mode: ModeOn}, DefaultBound * 10, true},
		{Options{Mode: ModeOff}, 1, false},
		{Options{Mode: ModeAuto, Bound: 10}, 11, false},
	} {
		if got := tc.opts.Records(tc.ops); got != tc.want {
			t.Errorf("%+v.Records(%d) = %v, want %v", tc.opts, tc.ops, got, tc.want)
		}
	}
	if h := (Options{}).NotChecked("m", 5); h == nil || h.Result != result.HistoryNotChecked {
		t.Errorf("auto above the bound: %+v", h)
	}
	if h := (Options{Mode: ModeOff}).NotChecked("m", 5); h != nil {
		t.Errorf("off: %+v", h)
	}
	for _, s := range []string{"", "auto", "on", "off"} {
		if _, err := ParseMode(s); err != nil {
			t.Errorf("ParseMode(%q): %v", s, err)
		}
	}
	if _, err := ParseMode("yes"); err == nil {
		t.Error("ParseMode(yes) accepted")
	}
}

// plainStockStep is the stock model written the obvious way: a lost
// purchase happens (or not) where porcupine places it.
func plainStockStep(state any, e history.Entry) []any {
	s := state.(int64)
	switch e.Kind {
	case StockRead:
		if e.Unknown || e.Out == s {
			return []any{s}
		}
	case StockPurchase:
		q := e.In
		switch {
		case e.Unknown && s >= q:
			return []any{s, s - q}
		case e.Unknown:
			return []any{s}
		case e.OK && e.Flag && s >= q:
			return []any{s - q}
		case e.OK && !e.Flag && s >= q && e.Out == s-q:
			return []any{s - q}
		case !e.OK && s < q && e.Out == s:
			return []any{s}
		}
	}
	return nil
}

// TestStockPendingClaims checks, on random small histories with lost
// replies, that the model's pending claims decide exactly as the plain
// nondeterministic model does.
func TestStockPendingClaims(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	plain := Model{Init: func(int64) any { return int64(5) }, Step: plainStockStep, Describe: describeStock}
	claimsModel := stockModel(5)
	legal, illegal := 0, 0
	for range 400 {
		var ops []history.Entry
		for i := range 3 + r.IntN(7) {
			call := r.Int64N(20)
			e := history.Entry{Call: call, Return: call + 1 + r.Int64N(6), Client: int32(i), In2: int64(i), In: 1 + r.Int64N(2), Out: r.Int64N(6)}
			switch r.IntN(5) {
			case 0:
				e.Kind = StockRead
			case 1, 2:
				e.Kind, e.OK = StockPurchase, true
			case 3:
				e.Kind = StockPurchase
			default:
				e.Kind, e.Unknown = StockPurchase, true
			}
			ops = append(ops, e)
		}
		want := porcupineCheck(plain, ops)
		if got := porcupineCheck(claimsModel, ops); got != want {
			t.Fatalf("pending claims say %v, the plain model %v: %+v", got, want, ops)
		}
		if want {
			legal++
		} else {
			illegal++
		}
	}
	if legal == 0 || illegal == 0 {
		t.Fatalf("%d linearizable and %d not: the cases do not cover both", legal, illegal)
	}
}

// wantHistory checks the result of a one-partition history of n
// operations, and for a violation its partition, a witness containing
// witness and the visualization's page.
func wantHistory(t *testing.T, h *result.History, n int, want, partition, witness string) {
	t.Helper()
	if h.Result != want {
		brief := *h
		brief.Page = nil
		t.Fatalf("result %s, want %s: %+v", h.Result, want, brief)
	}
	if h.Ops != int64(n) || h.Partitions != 1 {
		t.Fatalf("ops %d partitions %d", h.Ops, h.Partitions)
	}
	if want != result.HistoryNotLinearizable {
		return
	}
	if !strings.Contains(h.Witness+strings.Join(h.WitnessOps, ";"), witness) || h.Partition != partition || len(h.Page) == 0 {
		t.Fatalf("witness %q %q in %q, page %d bytes; want %q in %q", h.Witness, h.WitnessOps, h.Partition, len(h.Page), witness, partition)
	}
}
