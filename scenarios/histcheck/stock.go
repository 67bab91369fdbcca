package histcheck

import (
	"fmt"
	"sort"

	"github.com/paybench/paybench/bench/history"
)

// Operations of the stock counter model (Entry.Kind).
const (
	// StockPurchase is one buyer's purchase: In the quantity, In2 the
	// buyer; OK taken or refused, Out the stock the reply reported (after
	// the deduction, or the stock that could not cover it), Flag answered
	// from its record (an idempotent replay: Out is the stock at the
	// replay, not after the deduction).
	StockPurchase uint8 = 1
	// StockRead is a read of the whole stock (every shard at once): Out
	// the value.
	StockRead uint8 = 2
)

// Stock is the stock counter model: per item, a counter starting at
// initial(key). A purchase of q is taken when the counter covers it, and
// the reply reports what is left; it is refused, reporting the counter,
// when the counter is below q. A read returns the counter. A purchase
// whose reply was lost may or may not have been taken. A purchase answered
// from its record was taken once, within its own call (an earlier send of
// the same purchase), and its reply's stock is not checked.
func Stock(initial func(key int64) int64, item func(key int64) string) Model {
	return Model{
		Name:      "stock counter",
		Init:      func(key int64) any { return initial(key) },
		Step:      stockStep,
		Describe:  describeStock,
		Partition: func(key int64) string { return "item " + item(key) },
		Explain:   explainStock,
		Reduce:    reduceStock,
	}
}

func stockStep(state any, e history.Entry) []any {
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

func describeStock(e history.Entry) string {
	if e.Kind == StockRead {
		if e.Unknown {
			return "read → (no reply yet)"
		}
		return fmt.Sprintf("read → %d", e.Out)
	}
	who := fmt.Sprintf("buyer %d: buy %d", e.In2, e.In)
	switch {
	case e.Unknown:
		return who + " → reply lost (may or may not have happened)"
	case e.OK && e.Flag:
		return who + fmt.Sprintf(" → OK, answered from its record, %d left", e.Out)
	case e.OK:
		return who + fmt.Sprintf(" → OK, %d left", e.Out)
	}
	return who + fmt.Sprintf(" → refused, %d in stock", e.Out)
}

// explainStock finds the stock anomalies a client could see, each a
// proof by itself that no serial order exists: a stock below zero (the
// counter never goes below zero), or two buyers told the same remainder
// (every purchase taken leaves less than the one before). It reports the
// one complete soonest.
func explainStock(ops []history.Entry) (string, []history.Entry) {
	var neg *history.Entry
	byOut := map[int64][]history.Entry{}
	for i := range ops {
		e := ops[i]
		if e.Unknown {
			continue
		}
		if e.Out < 0 && !(e.Kind == StockPurchase && e.OK && e.Flag) && (neg == nil || e.Return < neg.Return) {
			neg = &ops[i]
		}
		if e.Kind == StockPurchase && e.OK && !e.Flag {
			byOut[e.Out] = append(byOut[e.Out], e)
		}
	}
	// The duplicate shown soonest: the value whose second answer came
	// first.
	var dup []history.Entry
	for _, same := range byOut {
		if len(same) < 2 {
			continue
		}
		sort.Slice(same, func(i, j int) bool { return same[i].Return < same[j].Return })
		if dup == nil || same[1].Return < dup[1].Return {
			dup = same
		}
	}
	switch {
	case neg != nil && (dup == nil || neg.Return <= dup[1].Return):
		if neg.Kind == StockRead {
			return fmt.Sprintf("a read of the stock saw %d", neg.Out), []history.Entry{*neg}
		}
		return fmt.Sprintf("buyer %d was told %d remained", neg.In2, neg.Out), []history.Entry{*neg}
	case dup != nil:
		var told string
		switch len(dup) {
		case 2:
			told = fmt.Sprintf("buyers %d and %d were both told %d remained", dup[0].In2, dup[1].In2, dup[0].Out)
		case 3:
			told = fmt.Sprintf("buyers %d, %d and %d were all told %d remained", dup[0].In2, dup[1].In2, dup[2].In2, dup[0].Out)
		default:
			told = fmt.Sprintf("buyers %d, %d and %d others were all told %d remained", dup[0].In2, dup[1].In2, len(dup)-2, dup[0].Out)
		}
		return told, dup
	}
	return "", nil
}

// reduceStock drops the stock observations that others imply, so that the
// search does not try every order of operations that change nothing. The
// counter only ever goes down, so in any serial order it holds each value
// during one stretch; an operation that changes nothing and saw value v (a
// read of v, a refusal reporting v) fits that order if and only if its
// span meets v's stretch. Of all such operations that saw v, the one that
// returned first and the one called last bound the stretch most tightly:
// when both fit, every other fits too (it returned later than the first
// and was called earlier than the last). The others are dropped, as are
// reads whose reply was lost (they tell nothing). The result is
// linearizable if and only if the whole history is.
func reduceStock(ops []history.Entry) []history.Entry {
	type pair struct{ first, last int } // indices: earliest return, latest call
	byValue := map[int64]*pair{}
	// An observation fits exactly the states equal to its value: a read,
	// a refusal reporting less than it asked for. (A refusal reporting
	// enough stock fits no state at all: it is kept.)
	observes := func(e history.Entry) bool {
		return !e.Unknown && (e.Kind == StockRead || e.Kind == StockPurchase && !e.OK && e.Out < e.In)
	}
	keep := make([]bool, len(ops))
	for i, e := range ops {
		switch {
		case e.Kind == StockRead && e.Unknown:
			continue
		case !observes(e):
			keep[i] = true
			continue
		}
		p := byValue[e.Out]
		if p == nil {
			byValue[e.Out] = &pair{i, i}
			continue
		}
		if e.Return < ops[p.first].Return {
			p.first = i
		}
		if e.Call > ops[p.last].Call {
			p.last = i
		}
	}
	for _, p := range byValue {
		keep[p.first], keep[p.last] = true, true
	}
	out := make([]history.Entry, 0, len(ops))
	for i, e := range ops {
		if keep[i] {
			out = append(out, e)
		}
	}
	return out
}
