package reports

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/reports/result"
)

// ErrMerge is wrapped by Merge's errors: the inputs cannot be combined.
var ErrMerge = errors.New("cannot merge")

// MergeInput is one result to merge, with the name it is known by (its
// file).
type MergeInput struct {
	Name string
	Doc  *result.Document
}

// startSpread is how far apart the inputs' start times may be before Merge
// warns that they may not be the same run.
const startSpread = 10 * time.Second

// Merge combines the results of one run taken by several load generators
// against one Redis, matching cells by key (scenario-or-operation, backend,
// strategy):
//
//   - histograms add exactly (decoded, merged, re-encoded), and the latency
//     summaries are recomputed from them;
//   - operations, errors by class, dropped operations and throughputs add;
//     the elapsed time is the longest;
//   - the series add interval by interval (operations and errors exactly;
//     an interval's p99 and max are the highest of the inputs', its p50
//     their mean weighted by operations: per-interval histograms are not
//     kept);
//   - figures combine as the cell's FigureMerge says (sum when it says
//     nothing);
//   - an invariant with a Rule whose figures all have a declared merge (or
//     agree in every input) is re-judged on the combined figures and
//     marked "rejudged"; any other holds only if it held in every input and
//     is marked "kept";
//   - the verdict is judged again (ERROR if any input's cell was, else
//     INCONCLUSIVE if any was, with their reasons); the cell is
//     interrupted if any input's was.
//
// The warnings say what a reader should know: inputs that ran a cell with
// different parameters (but for those each generator may choose, such as
// its seed), against a different server address or Redis version, or with
// a different paybench build; inputs that started far apart; cells
// missing from some inputs; figures that should have agreed and did not.
// They are also recorded in the merged document's Warnings, after the
// inputs' own. Inputs of different kinds are an error.
func Merge(inputs []MergeInput) (*result.Document, []string, error) {
	if len(inputs) == 0 {
		return nil, nil, fmt.Errorf("%w: no input", ErrMerge)
	}
	first := inputs[0].Doc
	out := &result.Document{
		Schema:      result.SchemaVersion,
		Kind:        first.Kind,
		Tool:        first.Tool,
		Command:     first.Command,
		Started:     first.Started,
		Finished:    first.Finished,
		Fairness:    first.Fairness,
		Mode:        first.Mode,
		Interrupted: false,
	}
	var warnings []string
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
	earliest, latest := first.Started, first.Started
	type group struct {
		key   string
		cells []*result.Cell
		from  []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, in := range inputs {
		d := in.Doc
		if d.Kind != first.Kind {
			return nil, nil, fmt.Errorf("%w: %s is a %q result, %s a %q one", ErrMerge, inputs[0].Name, first.Kind, in.Name, d.Kind)
		}
		if d.Tool != first.Tool {
			warn("%s was written by %s, %s by %s", in.Name, describeTool(d.Tool), inputs[0].Name, describeTool(first.Tool))
		}
		if a, b := d.Fairness.Server.Address, first.Fairness.Server.Address; a != b {
			warn("%s ran against %s, %s against %s: merging assumes one Redis", in.Name, a, inputs[0].Name, b)
		}
		if a, b := d.Fairness.Server.Version, first.Fairness.Server.Version; a != b {
			warn("%s ran against redis %s, %s against redis %s: merging assumes one Redis", in.Name, orUnknown(a), inputs[0].Name, orUnknown(b))
		}
		for _, w := range d.Warnings {
			warn("%s: %s", in.Name, w)
		}
		if d.Started.Before(out.Started) {
			out.Started = d.Started
		}
		if d.Finished.After(out.Finished) {
			out.Finished = d.Finished
		}
		if d.Started.Before(earliest) {
			earliest = d.Started
		}
		if d.Started.After(latest) {
			latest = d.Started
		}
		out.Interrupted = out.Interrupted || d.Interrupted
		if len(d.Sources) > 0 {
			out.Sources = append(out.Sources, d.Sources...)
		} else {
			out.Sources = append(out.Sources, result.Source{Name: in.Name, Host: d.Host, Commit: d.Tool.Commit, Started: d.Started, Finished: d.Finished})
		}
		for i := range d.Cells {
			c := &d.Cells[i]
			g, ok := byKey[c.Key()]
			if !ok {
				g = &group{key: c.Key()}
				byKey[c.Key()] = g
				groups = append(groups, g)
			}
			g.cells = append(g.cells, c)
			g.from = append(g.from, in.Name)
		}
	}
	if spread := latest.Sub(earliest); spread > startSpread {
		warn("the inputs started %s apart: merged figures assume they ran at the same time", spread.Round(time.Millisecond))
	}
	var diffs paramDiffs
	for _, g := range groups {
		ws, err := checkShards(g.key, g.cells, g.from)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, ws...)
		diffs.add(g.key, g.cells, g.from)
	}
	for _, w := range diffs.warnings() {
		warn("%s", w)
	}
	for _, g := range groups {
		if len(g.cells) < len(inputs) {
			warn("%s is in %d of %d inputs (%s)", g.key, len(g.cells), len(inputs), strings.Join(g.from, ", "))
		}
		c, ws, err := mergeCells(g.cells, g.from)
		if err != nil {
			// A damaged histogram cannot be combined either.
			if !errors.Is(err, ErrMerge) {
				err = fmt.Errorf("%w: %w", ErrMerge, err)
			}
			return nil, nil, fmt.Errorf("%s: %w", g.key, err)
		}
		for _, w := range ws {
			warn("%s: %s", g.key, w)
		}
		out.Cells = append(out.Cells, c)
	}
	out.Warnings = warnings
	return out, warnings, nil
}

// describeTool names a paybench build, "paybench 0.1.0 (commit 0123abc)".
func describeTool(t result.Tool) string {
	s := "paybench " + orUnknown(t.Version)
	if t.Commit != "" {
		s += " (commit " + t.Commit + ")"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// perGeneratorParams are the cell parameters that may differ between load
// generators of one run without making their figures unfit to add: each
// generator should draw its own random sequence (seed), and the open loop
// sizes its worker pool (workers_peak) and may hit the hard cap (capped)
// on its own.
var perGeneratorParams = map[string]bool{"seed": true, "workers_peak": true, "capped": true,
	// Each generator of a sharded load runs its own part (checkShards
	// checks the parts), may start late, and may miss its rate on its own.
	paramShard: true, paramShardKeys: true, paramShardReqs: true, "start_late": true, "rate_missed_by": true}

// paramDiff is one parameter that differs between the inputs, with the
// same values, in some cells.
type paramDiff struct {
	name, values string
	cells        []string
}

// paramDiffs collects the parameters that differ between the inputs of
// each cell, grouping the cells where one differs the same way.
type paramDiffs struct {
	list  []*paramDiff
	index map[[2]string]*paramDiff
	// compared counts the cells that more than one input measured.
	compared int
}

// add records the parameters of one cell's inputs (cells, read from the
// files named in from) that do not agree, but for perGeneratorParams.
func (p *paramDiffs) add(key string, cells []*result.Cell, from []string) {
	if len(cells) < 2 {
		return
	}
	p.compared++
	var names []string
	seen := map[string]bool{}
	for _, c := range cells {
		for _, k := range sortedKeys(c.Params) {
			if !seen[k] && !perGeneratorParams[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	sort.Strings(names)
	for _, name := range names {
		vals := make([]string, len(cells))
		same := true
		for i, c := range cells {
			v, ok := c.Params[name]
			if !ok {
				v = "(unset)"
			}
			vals[i] = v
			same = same && v == vals[0]
		}
		if same {
			continue
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = v + " in " + from[i]
		}
		values := strings.Join(parts, ", ")
		k := [2]string{name, values}
		if p.index == nil {
			p.index = map[[2]string]*paramDiff{}
		}
		d, ok := p.index[k]
		if !ok {
			d = &paramDiff{name: name, values: values}
			p.index[k] = d
			p.list = append(p.list, d)
		}
		d.cells = append(d.cells, key)
	}
}

// warnings renders one line per parameter and values, naming the cells
// (or "every cell" when it is every cell that several inputs measured).
func (p *paramDiffs) warnings() []string {
	n := p.compared
	var out []string
	for _, d := range p.list {
		where := "every cell"
		switch {
		case len(d.cells) < n && len(d.cells) <= 3:
			where = strings.Join(d.cells, ", ")
		case len(d.cells) < n:
			where = fmt.Sprintf("%s and %d more cells", strings.Join(d.cells[:3], ", "), len(d.cells)-3)
		}
		out = append(out, fmt.Sprintf("parameter %s differs between the inputs (%s) in %s: the merged figures add different loads", d.name, d.values, where))
	}
	return out
}

// mergeCells combines one cell's measurements from several generators.
func mergeCells(cells []*result.Cell, from []string) (result.Cell, []string, error) {
	var warnings []string
	f := cells[0]
	out := result.Cell{
		Scenario:  f.Scenario,
		Operation: f.Operation,
		Backend:   f.Backend,
		Strategy:  f.Strategy,
		Expect:    f.Expect,
		Params:    shardParams(f.Params, cells),
	}
	var errs, reasons, summaries []string
	anyError, anyInconclusive, allUnsupported := false, false, true
	for _, c := range cells {
		out.Generators += max(c.Generators, 1)
		out.Ops += c.Ops
		out.Dropped += c.Dropped
		out.ThroughputOps += c.ThroughputOps
		out.ElapsedSec = math.Max(out.ElapsedSec, c.ElapsedSec)
		for k, v := range c.Errors {
			if out.Errors == nil {
				out.Errors = map[string]int64{}
			}
			out.Errors[k] += v
		}
		for k, v := range c.ErrorSamples {
			if out.ErrorSamples == nil {
				out.ErrorSamples = map[string]string{}
			}
			if _, ok := out.ErrorSamples[k]; !ok {
				out.ErrorSamples[k] = v // the first input's
			}
		}
		anyError = anyError || c.Verdict == result.Error
		anyInconclusive = anyInconclusive || c.Verdict == result.Inconclusive
		allUnsupported = allUnsupported && c.Verdict == result.Unsupported
		out.Interrupted = out.Interrupted || c.Interrupted
		errs = appendDistinct(errs, c.Error)
		reasons = appendDistinct(reasons, c.Reason)
		summaries = appendDistinct(summaries, c.Summary)
		for k, v := range c.FigureMerge {
			if out.FigureMerge == nil {
				out.FigureMerge = map[string]string{}
			}
			if _, ok := out.FigureMerge[k]; !ok {
				out.FigureMerge[k] = v
			}
		}
	}
	out.Error = strings.Join(errs, "; ")
	out.Reason = strings.Join(reasons, "; ")
	switch {
	case len(summaries) == 1:
		out.Summary = summaries[0]
	case len(summaries) > 1:
		out.Summary = fmt.Sprintf("merged from %d generators: %s", out.Generators, strings.Join(summaries, " | "))
	}

	if err := mergeHistograms(&out, cells); err != nil {
		return out, nil, err
	}
	out.Series = mergeSeries(cells)
	stages, sw, err := mergeStages(cells)
	if err != nil {
		return out, nil, err
	}
	out.Stages = stages
	warnings = append(warnings, sw...)

	figs, agreed, fw := mergeFigures(cells, out.FigureMerge)
	warnings = append(warnings, fw...)
	out.Figures = figs
	out.Invariants = mergeInvariants(cells, from, figs, agreed)
	mergeExtras(&out, cells, from)

	switch {
	case anyError:
		out.Verdict = result.Error
	case anyInconclusive:
		out.Verdict = result.Inconclusive
	case allUnsupported:
		out.Verdict = result.Unsupported
	default:
		out.Judge()
		out.JudgeHistory()
	}
	return out, warnings, nil
}

// mergeHistograms adds the cells' histograms key by key and recomputes the
// latency summaries from the sums.
func mergeHistograms(out *result.Cell, cells []*result.Cell) error {
	var keys []string
	seen := map[string]bool{}
	for _, c := range cells {
		for _, k := range HistogramKeys(c) {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		out.Latency = cells[0].Latency
		out.Steps = cells[0].Steps
		return nil
	}
	out.Histograms = map[string]string{}
	sums := map[string]*hdrhistogram.Histogram{}
	for _, k := range keys {
		var sum *hdrhistogram.Histogram
		for _, c := range cells {
			h, err := CellHistogram(c, k)
			if err != nil {
				return err
			}
			if h == nil {
				continue
			}
			if sum == nil {
				sum = h
				continue
			}
			if dropped := sum.Merge(h); dropped > 0 {
				return fmt.Errorf("%w: histogram %s: %d values out of range", ErrMerge, k, dropped)
			}
		}
		enc, err := EncodeHistogram(sum)
		if err != nil {
			return err
		}
		out.Histograms[k] = enc
		sums[k] = sum
	}
	out.Latency = result.Latency{Corrected: result.Summarize(sums[result.HistogramCorrected]), Uncorrected: result.Summarize(sums[result.HistogramUncorrected])}
	for k, h := range sums {
		if name, ok := strings.CutPrefix(k, result.HistogramStepPrefix); ok {
			if out.Steps == nil {
				out.Steps = map[string]result.Latency{}
			}
			s := result.Summarize(h)
			out.Steps[name] = result.Latency{Corrected: s, Uncorrected: s}
		}
	}
	return nil
}

// mergeSeries adds the cells' series interval by interval.
func mergeSeries(cells []*result.Cell) []result.Point {
	n := 0
	for _, c := range cells {
		n = max(n, len(c.Series))
	}
	if n == 0 {
		return nil
	}
	out := make([]result.Point, n)
	p50w := make([]float64, n)
	for _, c := range cells {
		for i, p := range c.Series {
			o := &out[i]
			o.T = math.Max(o.T, p.T)
			o.Ops += p.Ops
			o.Errors += p.Errors
			for k, v := range p.ErrorsByClass {
				if o.ErrorsByClass == nil {
					o.ErrorsByClass = map[string]int64{}
				}
				o.ErrorsByClass[k] += v
			}
			o.P99 = max(o.P99, p.P99)
			o.Max = max(o.Max, p.Max)
			p50w[i] += float64(p.P50) * float64(p.Ops)
		}
	}
	for i := range out {
		if out[i].Ops > 0 {
			out[i].P50 = int64(math.Round(p50w[i] / float64(out[i].Ops)))
		}
	}
	return out
}

// mergeFigures combines the cells' figures as modes says (sum by
// default). agreed holds the figures whose combined value is sound to
// re-judge a rule on: those whose merge the cell declares (a "same" figure
// only when every input agrees).
func mergeFigures(cells []*result.Cell, modes map[string]string) (map[string]float64, map[string]bool, []string) {
	var names []string
	seen := map[string]bool{}
	for _, c := range cells {
		for _, k := range sortedKeys(c.Figures) {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	if len(names) == 0 {
		return nil, nil, nil
	}
	var warnings []string
	out := map[string]float64{}
	agreed := map[string]bool{}
	for _, k := range names {
		var vals []float64
		for _, c := range cells {
			if v, ok := c.Figures[k]; ok {
				vals = append(vals, v)
			}
		}
		equal := len(vals) == len(cells)
		for _, v := range vals {
			equal = equal && v == vals[0]
		}
		mode, declared := modes[k]
		switch mode {
		case result.MergeMax:
			out[k] = vals[0]
			for _, v := range vals {
				out[k] = math.Max(out[k], v)
			}
		case result.MergeMin:
			out[k] = vals[0]
			for _, v := range vals {
				out[k] = math.Min(out[k], v)
			}
		case result.MergeSame:
			out[k] = vals[0]
			if !equal {
				warnings = append(warnings, fmt.Sprintf("figure %s should be the same in every input and is not (%s); kept the first", k, formatFloats(vals)))
				declared = false
			}
		default:
			if declared && mode != result.MergeSum {
				warnings = append(warnings, fmt.Sprintf("figure %s has an unknown merge %q; summed", k, mode))
				declared = false
			}
			for _, v := range vals {
				out[k] += v
			}
		}
		agreed[k] = declared
	}
	return out, agreed, warnings
}

// mergeInvariants re-judges each invariant on the combined figures where
// its rule allows, else keeps it as the conjunction of the inputs' (proven
// when a broken input was).
func mergeInvariants(cells []*result.Cell, from []string, figs map[string]float64, agreed map[string]bool) []result.Invariant {
	var order []string
	byName := map[string][]result.Invariant{}
	byNameFrom := map[string][]string{}
	for i, c := range cells {
		for _, inv := range c.Invariants {
			if _, ok := byName[inv.Name]; !ok {
				order = append(order, inv.Name)
			}
			byName[inv.Name] = append(byName[inv.Name], inv)
			byNameFrom[inv.Name] = append(byNameFrom[inv.Name], from[i])
		}
	}
	var out []result.Invariant
	for _, name := range order {
		invs := byName[name]
		merged := result.Invariant{Name: name, Rule: invs[0].Rule, Holds: true}
		if rejudge(merged.Rule, agreed) {
			if holds, err := EvalRule(merged.Rule, figs); err == nil {
				merged.Holds = holds
				merged.Merged = result.Rejudged
				merged.Detail = "on the merged figures: " + ruleWithValues(merged.Rule, figs)
				out = append(out, merged)
				continue
			}
		}
		merged.Merged = result.Kept
		var details []string
		for i, inv := range invs {
			merged.Holds = merged.Holds && inv.Holds
			// A break some generator proved independent of its failed
			// operations stays proven in the conjunction.
			merged.Proven = merged.Proven || (!inv.Holds && inv.Proven)
			details = append(details, byNameFrom[name][i]+": "+inv.Detail)
		}
		if d := distinct(invs); len(d) == 1 {
			merged.Detail = d[0]
		} else {
			merged.Detail = strings.Join(details, "; ")
		}
		out = append(out, merged)
	}
	return out
}

// rejudge reports whether a rule reads only figures whose merged value is
// sound.
func rejudge(rule string, agreed map[string]bool) bool {
	if rule == "" {
		return false
	}
	names, err := RuleFigures(rule)
	if err != nil {
		return false
	}
	for _, n := range names {
		if !agreed[n] {
			return false
		}
	}
	return true
}

// ruleWithValues renders a rule with its figures' values, "oversold_units
// (0) <= 0".
func ruleWithValues(rule string, figs map[string]float64) string {
	l, op, r, err := ParseRule(rule)
	if err != nil {
		return rule
	}
	show := func(s string) string {
		if v, ok := figs[s]; ok {
			return fmt.Sprintf("%s (%s)", s, strconv.FormatFloat(v, 'f', -1, 64))
		}
		return s
	}
	return show(l) + " " + op + " " + show(r)
}

func distinct(invs []result.Invariant) []string {
	var out []string
	for _, inv := range invs {
		out = appendDistinct(out, inv.Detail)
	}
	return out
}

func appendDistinct(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

func formatFloats(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
