// Package histcheck checks the histories recorded by bench/history for
// linearizability with github.com/anishathalye/porcupine: could every
// answer a client was told have come from some serial order of the
// operations, each taking effect at one instant between its call and its
// return? It holds the models (stock counter, order state machine, fenced
// lock, dedupe guard), the checking budget, the search for the smallest
// failing prefix and the plain-words witness of a violation.
//
// An operation whose reply was lost (Entry.Unknown) is modelled
// nondeterministically: it may or may not have happened, at any time after
// its call, and its answer is unconstrained.
package histcheck

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/reports/result"
)

// Mode says when a cell records and checks its history.
type Mode string

// Modes of --history.
const (
	// ModeAuto records and checks a cell whose operation count is at most
	// Options.Bound (the default).
	ModeAuto Mode = "auto"
	// ModeOn records and checks every cell that has a model.
	ModeOn Mode = "on"
	// ModeOff records nothing.
	ModeOff Mode = "off"
)

// ParseMode parses off, on or auto ("" is auto).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeOn, ModeOff:
		return Mode(s), nil
	}
	return "", fmt.Errorf("%q is not off, on or auto", s)
}

// DefaultBound is the largest operation count auto mode records.
const DefaultBound = 5_000

// DefaultTimeout is the default budget of one cell's check.
const DefaultTimeout = 10 * time.Second

// Options say whether and how a cell's history is checked. The zero value
// is auto mode, DefaultBound and DefaultTimeout.
type Options struct {
	Mode Mode
	// Timeout bounds one cell's check; beyond it the result is unknown.
	Timeout time.Duration
	// Bound is the largest operation count auto mode records.
	Bound int64
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// Records reports whether a cell of about ops operations records its
// history.
func (o Options) Records(ops int64) bool {
	switch o.Mode {
	case ModeOff:
		return false
	case ModeOn:
		return true
	}
	bound := o.Bound
	if bound <= 0 {
		bound = DefaultBound
	}
	return ops <= bound
}

// NotChecked is the history object of a cell that did not record its
// history although it has a model (auto mode above the bound), or nil when
// the mode is off (nothing to say).
func (o Options) NotChecked(model string, ops int64) *result.History {
	if o.Mode == ModeOff {
		return nil
	}
	bound := o.Bound
	if bound <= 0 {
		bound = DefaultBound
	}
	return &result.History{Model: model, Result: result.HistoryNotChecked,
		Reason: fmt.Sprintf("%d operations, more than --history auto records (%d): use --history on", ops, bound)}
}

// Model is the sequential specification of one family's operations, over
// history entries. Each partition (Entry.Key) is checked on its own.
type Model struct {
	// Name names the model in the result ("stock counter").
	Name string
	// Init is a partition's initial state.
	Init func(key int64) any
	// Step returns every state the operation e can lead to from state, or
	// none when e's answer is impossible there. An Unknown entry must allow
	// both "it happened" and "it did not".
	Step func(state any, e history.Entry) []any
	// Describe says what one operation was and what its client was told,
	// in a few words ("buyer 17: buy 1 → OK, 7 left").
	Describe func(e history.Entry) string
	// DescribeState renders a state for the visualization.
	DescribeState func(state any) string
	// Partition names a partition ("item sku-1", "order 12").
	Partition func(key int64) string
	// Explain, when set, looks in a partition's operations for an
	// anomaly that alone proves no serial order exists, and names it in
	// plain words ("buyers 17 and 42 were both told 7 remained") with the
	// operations involved; "" when it sees none of the anomalies it knows.
	Explain func(ops []history.Entry) (string, []history.Entry)
	// PendingAtCall says the model keeps the later effect of an operation
	// whose outcome is unknown in its state (a pending claim that later
	// answers may find applied or not), so the checker linearizes such an
	// operation right at its call instead of trying every later place for
	// it. Without it, an unknown operation may take effect at any time
	// after its call, and the search tries where.
	PendingAtCall bool
	// Reduce, when set, drops from a partition's operations those that
	// others imply, so that the search is not lost in orders of
	// operations that change nothing; the reduced history must be
	// linearizable if and only if the whole one is.
	Reduce func(ops []history.Entry) []history.Entry
}

// pending is the return time given to operations whose outcome is unknown:
// later than every recorded time, so they may take effect at any point
// after their call.
const pending = math.MaxInt64 / 4

// Check checks the entries of a cell against m within opts' timeout.
// overflow is how many entries the recorder could not keep: a history with
// an overflow is incomplete and not checked (result unknown, with why).
//
// Each partition is reduced (Model.Reduce) and checked whole. For a
// violation, the result names the smallest failing partition, the
// shortest failing prefix of it when one is found in the time left (else
// the whole partition) and the operations involved, and holds porcupine's
// visualization of it (History.Page). A partition the whole check could
// not decide in time is searched for a failing prefix with what is left,
// and then for an anomaly the model knows (Model.Explain), which proves a
// violation by itself.
func Check(ctx context.Context, m Model, entries []history.Entry, overflow int64, opts Options) *result.History {
	start := time.Now()
	h := &result.History{Model: m.Name, Ops: int64(len(entries))}
	for _, e := range entries {
		if e.Unknown {
			h.UnknownOutcomes++
		}
	}
	defer func() { h.CheckSec = time.Since(start).Seconds() }()
	if overflow > 0 {
		h.Result = result.HistoryUnknown
		h.Reason = fmt.Sprintf("the history is incomplete: %d operations did not fit the recorder's buffers", overflow)
		return h
	}
	parts := partition(entries, m.Reduce)
	h.Partitions = len(parts)
	deadline := start.Add(opts.timeout())
	var illegal, unknown []part
	var info porcupine.LinearizationInfo
	var w *witness
	for _, p := range parts {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			unknown = append(unknown, p)
			continue
		}
		// An anomaly the model knows proves a violation by itself, without
		// a search (porcupine then only draws it).
		if m.Explain != nil && w == nil {
			if text, involved := m.Explain(p.ops); text != "" {
				w = anomaly(p.ops, involved)
				w.text = text
				illegal = append([]part{p}, illegal...)
				continue
			}
		}
		// Half the budget at most for the whole partition: the rest is
		// for its prefixes (which show a violation sooner) and the
		// witness.
		res, in := porcupine.CheckOperationsVerbose(porcupineModel(m, p.key), operations(m, p.ops, pending), max(left-opts.timeout()/2, left/2))
		switch res {
		case porcupine.Illegal:
			if w == nil && (len(illegal) == 0 || len(p.ops) < len(illegal[0].ops)) {
				info = in
				illegal = append([]part{p}, illegal...)
			} else {
				illegal = append(illegal, p)
			}
		case porcupine.Unknown:
			unknown = append(unknown, p)
		}
	}
	if len(illegal) == 0 {
		// A partition the whole check could not decide may still show a
		// violation early on: its prefixes are checked with what is left.
		for _, p := range unknown {
			if time.Until(deadline) <= 0 || ctx.Err() != nil {
				break
			}
			if w = smallestIllegal(ctx, m, porcupineModel(m, p.key), p.ops, deadline); w != nil {
				illegal = append(illegal, p)
				break
			}
		}
	}
	if len(illegal) == 0 && m.Explain != nil {
		// The search could not decide, but an anomaly the model knows is a
		// proof by itself (two buyers told the same remainder, a stock
		// below zero).
		for _, p := range unknown {
			if text, involved := m.Explain(p.ops); text != "" {
				illegal = append(illegal, p)
				w = anomaly(p.ops, involved)
				w.text = text
				break
			}
		}
	}
	switch {
	case len(illegal) > 0:
		h.Result = result.HistoryNotLinearizable
		f := illegal[0] // the smallest failing partition (or the one a prefix showed)
		h.Partition = partName(m, f.key)
		pm := porcupineModel(m, f.key)
		if m.Explain != nil && (w == nil || w.text == "") {
			if text, involved := m.Explain(f.ops); text != "" {
				w = anomaly(f.ops, involved)
				w.text = text
			}
		}
		if w == nil {
			// Look for the shortest failing prefix, with what is left of
			// the budget, or at least a quarter of it.
			w = smallestIllegal(ctx, m, pm, f.ops, time.Now().Add(max(time.Until(deadline), opts.timeout()/4)))
		}
		if w == nil {
			w = culprit(f.ops, info)
		}
		explain(m, h, w)
		h.Page = visualize(m, pm, w)
	case len(unknown) > 0:
		h.Result = result.HistoryUnknown
		h.Reason = fmt.Sprintf("not decided within the check's time budget (--history-timeout %s): %d of %d partitions undecided, the largest %d operations",
			opts.timeout(), len(unknown), len(parts), largest(unknown, func(p part) int { return len(p.ops) }))
		if ctx.Err() != nil {
			h.Reason = "the check was interrupted"
		}
	default:
		h.Result = result.HistoryLinearizable
	}
	return h
}

// culprit makes the whole failing partition the witness, its culprit the
// operation that returned first among those the longest partial
// linearization porcupine found could not place (-1 when none is known).
func culprit(ops []history.Entry, info porcupine.LinearizationInfo) *witness {
	w := &witness{ops: ops, culprit: -1}
	placed := map[history.Entry]bool{}
	var longest []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, lin := range part {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	for _, op := range longest {
		if e, ok := op.Input.(history.Entry); ok {
			placed[e] = true
		}
	}
	for i, e := range ops {
		if !e.Unknown && !placed[e] && (w.culprit < 0 || e.Return < ops[w.culprit].Return) {
			w.culprit = i
		}
	}
	return w
}

func largest[T any](xs []T, n func(T) int) int {
	m := 0
	for _, x := range xs {
		m = max(m, n(x))
	}
	return m
}

func partName(m Model, key int64) string {
	if m.Partition != nil {
		return m.Partition(key)
	}
	return fmt.Sprint(key)
}

type part struct {
	key int64
	ops []history.Entry
}

// partition groups entries by Key, in key order, each group reduced by
// reduce (when set).
func partition(entries []history.Entry, reduce func([]history.Entry) []history.Entry) []part {
	byKey := map[int64][]history.Entry{}
	for _, e := range entries {
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	keys := make([]int64, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	out := make([]part, len(keys))
	for i, k := range keys {
		ops := byKey[k]
		if reduce != nil {
			ops = reduce(ops)
		}
		out[i] = part{key: k, ops: ops}
	}
	return out
}

// operations turns entries into porcupine operations; an unknown outcome
// returns at ret (later than everything), or right after its call when the
// model keeps its later effect in its state (Model.PendingAtCall).
func operations(m Model, entries []history.Entry, ret int64) []porcupine.Operation {
	ops := make([]porcupine.Operation, len(entries))
	for i, e := range entries {
		r := e.Return
		switch {
		case e.Unknown && m.PendingAtCall:
			r = e.Call + 1
		case e.Unknown:
			r = ret
		}
		ops[i] = porcupine.Operation{ClientId: int(e.Client), Input: e, Call: e.Call, Return: r}
	}
	return ops
}

// porcupineModel wraps m as porcupine's model of the partition key (a
// nondeterministic model made deterministic over sets of states: Check
// partitions the history itself).
func porcupineModel(m Model, key int64) porcupine.Model {
	nd := &porcupine.NondeterministicModel{
		Init: func() []any { return []any{m.Init(key)} },
		Step: func(state, input, _ any) []any { return m.Step(state, input.(history.Entry)) },
		DescribeOperation: func(input, _ any) string {
			return m.Describe(input.(history.Entry))
		},
		DescribeState: func(state any) string {
			if m.DescribeState != nil {
				return m.DescribeState(state)
			}
			return fmt.Sprint(state)
		},
	}
	return nd.ToModel()
}

// witness is the smallest failing prefix of a partition: the operations
// called by the time the culprit returned (those still running then are
// pending: they may or may not have taken effect), and the culprit, whose
// answer no serial order of them explains (-1: unknown).
type witness struct {
	ops     []history.Entry
	culprit int
	prefix  bool // ops is a prefix: its Unknown operations include those still running
	// text and involved: the anomaly the model named (Model.Explain).
	text     string
	involved []history.Entry
	// vis, when set, are the operations the visualization shows (else
	// ops).
	vis []history.Entry
}

// anomaly is the witness of an anomaly the model named: the prefix of ops
// that ends when the last operation involved returned (it is not
// linearizable, since it holds them all).
func anomaly(ops, involved []history.Entry) *witness {
	var end int64
	for _, e := range involved {
		end = max(end, e.Return)
	}
	p := prefix(ops, end)
	w := &witness{ops: p, culprit: -1, prefix: true, involved: involved}
	// The visualization shows the same operations with their own
	// outcomes (not pending), which porcupine searches much faster: the
	// anomaly is in them, so they are not linearizable either.
	for _, e := range ops {
		if e.Call <= end {
			w.vis = append(w.vis, e)
		}
	}
	for i, e := range p {
		if !e.Unknown && e.Return == end {
			w.culprit = i
		}
	}
	return w
}

// stillRunning is the Return of an operation a prefix made pending: it was
// still running when the prefix ends.
const stillRunning = -1

// prefix returns the operations of ops called at or before t, those not
// returned by t made pending (Unknown, Return stillRunning).
func prefix(ops []history.Entry, t int64) []history.Entry {
	out := make([]history.Entry, 0, len(ops))
	for _, e := range ops {
		if e.Call > t {
			continue
		}
		if e.Return > t && !e.Unknown {
			// Still running at t: pending (Return stillRunning says so).
			e.Unknown, e.Return = true, stillRunning
		}
		out = append(out, e)
	}
	return out
}

// prefixBudget bounds the check of one prefix.
const prefixBudget = 250 * time.Millisecond

// smallestIllegal searches, by doubling then bisection on return times,
// the shortest prefix of ops that is not linearizable (linearizability is closed under
// prefixes whose unfinished operations are pending), within deadline. It
// returns nil when no prefix could be shown illegal in time.
func smallestIllegal(ctx context.Context, m Model, pm porcupine.Model, ops []history.Entry, deadline time.Time) *witness {
	var rets []int64
	for _, e := range ops {
		if !e.Unknown {
			rets = append(rets, e.Return)
		}
	}
	if len(rets) == 0 {
		return nil
	}
	sort.Slice(rets, func(i, j int) bool { return rets[i] < rets[j] })
	// One prefix gets a slice of the time left: a prefix the checker
	// cannot decide quickly (many operations still running, each of which
	// may or may not have taken effect) is taken as not shown illegal, and
	// the search goes on with longer ones.
	illegalAt := func(i int) bool {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		return porcupine.CheckOperationsTimeout(pm, operations(m, prefix(ops, rets[i]), pending), min(left, prefixBudget)) == porcupine.Illegal
	}
	// Prefixes of doubling length first (a violation often shows early,
	// and a short prefix is quick to check), then bisection.
	lo, hi := 0, -1 // the answer is in [lo, hi] once hi >= 0
	for n := 16; ; n *= 2 {
		i := min(n, len(rets)) - 1
		if illegalAt(i) {
			hi = i
			break
		}
		if i == len(rets)-1 || time.Until(deadline) <= 0 {
			return nil
		}
		lo = i + 1
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if illegalAt(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	p := prefix(ops, rets[hi])
	w := &witness{ops: p, culprit: -1, prefix: true}
	for i, e := range p {
		if !e.Unknown && e.Return == rets[hi] {
			w.culprit = i
		}
	}
	return w
}

// maxWitnessOps bounds the operations a violation lists.
const maxWitnessOps = 8

// explain fills the witness fields of h.
func explain(m Model, h *result.History, w *witness) {
	h.WitnessSize = len(w.ops)
	involved := w.involved
	switch {
	case w.text != "":
		h.Witness = w.text
	case w.culprit >= 0:
		c := w.ops[w.culprit]
		h.Witness = fmt.Sprintf("no serial order of the %d operations before it explains what %s was told", len(w.ops)-1, m.Describe(c))
		if !w.prefix {
			h.Witness = fmt.Sprintf("no serial order of the partition's %d operations explains what %s was told", len(w.ops), m.Describe(c))
		}
		involved = append(involved, c)
		// The operations running at the same time as the culprit.
		for _, e := range w.ops {
			if len(involved) >= maxWitnessOps {
				break
			}
			if e != c && e.Call < c.Return && (e.Unknown || e.Return > c.Call) {
				involved = append(involved, e)
			}
		}
	default:
		h.Witness = fmt.Sprintf("no serial order of the partition's %d operations explains what every client was told", len(w.ops))
	}
	for i, e := range involved {
		if i == maxWitnessOps {
			break
		}
		h.WitnessOps = append(h.WitnessOps, describeTimed(m, e))
	}
}

// describeTimed is an operation with its times, in ms from the origin.
func describeTimed(m Model, e history.Entry) string {
	if e.Unknown && e.Return == stillRunning {
		e.Unknown = false // describe the operation, not a lost reply
		return fmt.Sprintf("%s [called %.3fms, still running then]", describeCall(m, e), ms(e.Call))
	}
	if e.Unknown {
		return fmt.Sprintf("%s [called %.3fms, outcome unknown]", m.Describe(e), ms(e.Call))
	}
	return fmt.Sprintf("%s [%.3fms–%.3fms]", m.Describe(e), ms(e.Call), ms(e.Return))
}

// describeCall is an operation still running: what it asked, not what it
// was told later.
func describeCall(m Model, e history.Entry) string {
	d := m.Describe(e)
	if i := strings.Index(d, " → "); i >= 0 {
		d = d[:i]
	}
	return d
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// visualizeBudget bounds the check that computes a visualization's partial
// linearizations (when it runs out, the page shows those found so far).
const visualizeBudget = 2 * time.Second

// visualize renders porcupine's page of the witness prefix (nil when it
// cannot).
func visualize(m Model, pm porcupine.Model, w *witness) []byte {
	ops := w.ops
	if w.vis != nil {
		ops = w.vis
	}
	res, info := porcupine.CheckOperationsVerbose(pm, operations(m, ops, maxCall(ops)+1), visualizeBudget)
	if res == porcupine.Ok {
		return nil
	}
	var b bytes.Buffer
	if err := porcupine.Visualize(pm, info, &b); err != nil {
		return nil
	}
	return b.Bytes()
}

// maxCall is the latest time in ops (the pending operations' return in a
// visualization, so it stays readable).
func maxCall(ops []history.Entry) int64 {
	var t int64
	for _, e := range ops {
		t = max(t, e.Call)
		if !e.Unknown {
			t = max(t, e.Return)
		}
	}
	return t
}
