package histcheck

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

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
// whose reply was lost may or may not have been taken, at any time after its
// call (a pending claim: stockState). A purchase answered
// from its record was taken once, within its own call (an earlier send of
// the same purchase), and its reply's stock is not checked.
func Stock(initial func(key int64) int64, item func(key int64) string) Model {
	return Model{
		Name:      "stock counter",
		Init:      func(key int64) any { return stockState{stock: initial(key)} },
		Step:      stockStep,
		Describe:  describeStock,
		Partition: func(key int64) string { return "item " + item(key) },
		Explain:   explainStock,
		DescribeState: func(state any) string {
			s := state.(stockState)
			if s.pending == "" {
				return strconv.FormatInt(s.stock, 10)
			}
			return fmt.Sprintf("%d (lost purchases that may still apply: %s)", s.stock, s.pending)
		},
		Reduce: reduceStock,
		// A lost purchase is a pending claim in the state, which later
		// answers may find applied or not: it is linearized at its call.
		PendingAtCall: true,
	}
}

// stockState is a counter and the lost purchases that may still take
// their units: a purchase whose reply was lost is linearized at its call
// as a pending claim, which any later answer may find applied (before it)
// or not. This keeps the choice of when a lost purchase happened in the
// state instead of in the checker's search, which would try every place
// for it.
type stockState struct {
	stock int64
	// pending lists the quantities of the pending claims, as "q×n;"
	// groups in increasing q (comparable, so states compare with ==).
	pending string
}

func stockStep(state any, e history.Entry) []any {
	s := state.(stockState)
	// settle returns the states in which the counter shows v (>= 0) to an
	// operation, after some pending claims applied.
	settle := func(v int64) []any {
		if v < 0 || v > s.stock {
			return nil
		}
		var out []any
		for _, rest := range spend(s.pending, s.stock-v) {
			out = append(out, stockState{stock: v, pending: rest})
		}
		return out
	}
	switch e.Kind {
	case StockRead:
		if e.Unknown {
			return []any{s}
		}
		return settle(e.Out)
	case StockPurchase:
		q := e.In
		switch {
		case e.Unknown:
			return []any{stockState{stock: s.stock, pending: addPending(s.pending, q)}}
		case e.OK && e.Flag && s.stock >= q:
			// Taken once within its call; its reply's stock is not checked.
			return []any{stockState{stock: s.stock - q, pending: s.pending}}
		case e.OK && !e.Flag && e.Out >= 0:
			var out []any
			for _, st := range settle(e.Out + q) {
				st := st.(stockState)
				out = append(out, stockState{stock: e.Out, pending: st.pending})
			}
			return out
		case !e.OK && e.Out < q:
			return settle(e.Out)
		}
	}
	return nil
}

// claims is a multiset of pending quantities.
type claims []struct{ q, n int64 }

func parseClaims(p string) claims {
	var c claims
	for _, g := range strings.Split(p, ";") {
		if g == "" {
			continue
		}
		a, b, _ := strings.Cut(g, "x")
		q, _ := strconv.ParseInt(a, 10, 64)
		n, _ := strconv.ParseInt(b, 10, 64)
		c = append(c, struct{ q, n int64 }{q, n})
	}
	return c
}

func (c claims) String() string {
	var b strings.Builder
	for _, g := range c {
		if g.n > 0 {
			fmt.Fprintf(&b, "%dx%d;", g.q, g.n)
		}
	}
	return b.String()
}

// addPending adds a claim of q to p.
func addPending(p string, q int64) string {
	c := parseClaims(p)
	for i := range c {
		if c[i].q == q {
			c[i].n++
			return c.String()
		}
	}
	c = append(c, struct{ q, n int64 }{q, 1})
	sort.Slice(c, func(i, j int) bool { return c[i].q < c[j].q })
	return c.String()
}

// maxSpends bounds the ways of applying claims one step considers.
const maxSpends = 64

// spend returns every p left after claims adding up to exactly d applied
// (none when no choice of them does).
func spend(p string, d int64) []string {
	if d == 0 {
		return []string{p}
	}
	if p == "" || d < 0 {
		return nil
	}
	c := parseClaims(p)
	var out []string
	var walk func(i int, left int64)
	walk = func(i int, left int64) {
		if len(out) >= maxSpends {
			return
		}
		if left == 0 {
			out = append(out, c.String())
			return
		}
		if i == len(c) {
			return
		}
		n := c[i].n
		for k := int64(0); k <= n && k*c[i].q <= left; k++ {
			c[i].n = n - k
			walk(i+1, left-k*c[i].q)
		}
		c[i].n = n
	}
	walk(0, d)
	return out
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
// reads whose reply was lost (they tell nothing) and lost purchases called
// after an answer showed less stock than they ask for (they cannot have
// taken anything). The result is linearizable if and only if the whole
// history is.
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
	// A purchase whose reply was lost, called after some answer showed
	// the stock below its quantity, cannot have taken anything (the
	// counter never goes back up): it changes nothing and tells nothing.
	type seen struct{ ret, low int64 } // by return time: the lowest stock shown so far
	var shown []seen
	for _, e := range ops {
		if !e.Unknown && !(e.Kind == StockPurchase && e.OK && e.Flag) {
			shown = append(shown, seen{e.Return, e.Out})
		}
	}
	sort.Slice(shown, func(i, j int) bool { return shown[i].ret < shown[j].ret })
	for i := 1; i < len(shown); i++ {
		shown[i].low = min(shown[i].low, shown[i-1].low)
	}
	for i, e := range ops {
		if !(e.Unknown && e.Kind == StockPurchase) {
			continue
		}
		// The answers complete before the call.
		n := sort.Search(len(shown), func(j int) bool { return shown[j].ret >= e.Call })
		if n > 0 && shown[n-1].low < e.In {
			keep[i] = false
		}
	}
	out := make([]history.Entry, 0, len(ops))
	for i, e := range ops {
		if keep[i] {
			out = append(out, e)
		}
	}
	tightenStock(out)
	return out
}

// tightenStock narrows the span of every answer to where a serial order
// can place it: the counter only goes down, so an answer showing v comes
// after every answer showing more (after their calls), and a purchase
// leaving v comes before every answer showing v or less (before their
// returns); a read or refusal showing v comes after a purchase that left
// v. Every serial order of the history satisfies these, so the narrowed
// history is linearizable exactly when the whole one is; the checker,
// which tries operations in the order of their calls, no longer tries an
// answer long before the answers it must follow. A span the constraints
// empty is left as it was (the history is not linearizable; the checker
// finds it).
func tightenStock(ops []history.Entry) {
	type bound struct {
		maxCallOK, maxCallAll int64 // latest call of the answers showing v
		minRetObs, minRetAll  int64 // earliest return of the reads and refusals, of all
	}
	const inf = math.MaxInt64
	shows := func(e history.Entry) bool { return !e.Unknown && !(e.Kind == StockPurchase && e.OK && e.Flag) }
	byValue := map[int64]*bound{}
	for _, e := range ops {
		if !shows(e) {
			continue
		}
		b := byValue[e.Out]
		if b == nil {
			b = &bound{maxCallOK: -inf, maxCallAll: -inf, minRetObs: inf, minRetAll: inf}
			byValue[e.Out] = b
		}
		b.maxCallAll = max(b.maxCallAll, e.Call)
		b.minRetAll = min(b.minRetAll, e.Return)
		if e.Kind == StockPurchase && e.OK {
			b.maxCallOK = max(b.maxCallOK, e.Call)
		} else {
			b.minRetObs = min(b.minRetObs, e.Return)
		}
	}
	values := make([]int64, 0, len(byValue))
	for v := range byValue {
		values = append(values, v)
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	// above[v]: the latest call of an answer showing more than v; below[v]:
	// the earliest return of one showing less.
	above, below := map[int64]int64{}, map[int64]int64{}
	acc := int64(-inf)
	for i := len(values) - 1; i >= 0; i-- {
		above[values[i]] = acc
		acc = max(acc, byValue[values[i]].maxCallAll)
	}
	acc = inf
	for _, v := range values {
		below[v] = acc
		acc = min(acc, byValue[v].minRetAll)
	}
	for i, e := range ops {
		if !shows(e) {
			continue
		}
		b := byValue[e.Out]
		call, ret := max(e.Call, above[e.Out]), min(e.Return, below[e.Out])
		if e.Kind == StockPurchase && e.OK {
			ret = min(ret, b.minRetObs)
		} else {
			call = max(call, b.maxCallOK)
		}
		if call < ret {
			ops[i].Call, ops[i].Return = call, ret
		}
	}
}
