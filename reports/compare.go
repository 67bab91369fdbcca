package reports

import (
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/paybench/paybench/reports/result"
)

// CompareOptions are the relative gates of a comparison. A negative
// threshold is off.
type CompareOptions struct {
	// MaxP99Increase fails a cell whose corrected p99 grew by more than
	// this fraction of the base's (0.10: 10%).
	MaxP99Increase float64
	// MaxThroughputDrop fails a cell whose throughput fell by more than
	// this fraction of the base's.
	MaxThroughputDrop float64
	// MaxErrorRate fails a cell of the new result whose failed operations
	// exceed this fraction of its operations.
	MaxErrorRate float64
	// Gates are absolute gates judged on the new result.
	Gates []Gate
	// PerfCells limits the three thresholds above to the cells matching
	// one of these selectors (scenario-or-operation[/backend[/strategy]],
	// globs per part, as in gates); empty: every cell. Correctness and
	// missing cells are judged on every cell.
	PerfCells []string
}

// perfSelected reports whether the thresholds apply to the cell key.
func (o CompareOptions) perfSelected(key string) bool {
	if len(o.PerfCells) == 0 {
		return true
	}
	for _, sel := range o.PerfCells {
		if ok, _ := path.Match(cellPattern(sel), key); ok {
			return true
		}
	}
	return false
}

// ValidateCellSelectors checks selectors such as CompareOptions.PerfCells.
func ValidateCellSelectors(sels []string) error {
	for _, sel := range sels {
		if _, err := path.Match(cellPattern(sel), ""); err != nil {
			return fmt.Errorf("cell selector %q: %w", sel, err)
		}
	}
	return nil
}

// Delta is one figure of a cell in the base and the new result.
type Delta struct {
	Base, New float64
}

// Change is the relative change from base to new (0.1: +10%); NaN when
// the base is zero.
func (d Delta) Change() float64 {
	if d.Base == 0 {
		if d.New == 0 {
			return 0
		}
		return math.NaN()
	}
	return (d.New - d.Base) / d.Base
}

// CellComparison is one cell of a comparison.
type CellComparison struct {
	// Key names the cell: scenario-or-operation/backend/strategy.
	Key string
	// Base and New are the cell in each result; nil when absent.
	Base, New *result.Cell
	// Throughput in operations per second; P50, P99 and Max in
	// microseconds (corrected).
	Throughput, P50, P99, Max Delta
	// Failures lists why the cell fails the comparison, empty when it
	// passes.
	Failures []string
	// Notes lists what changed without failing it.
	Notes []string
	// NotCompared says why the cell, or its figures, were not compared
	// with the base, empty when they were: "not compared: interrupted"
	// (a cell of an interrupted new result, treated as missing), "not
	// judged: INCONCLUSIVE: …" (the new cell cannot be judged), or "not
	// compared with the base: …" (the base's cell was interrupted or
	// INCONCLUSIVE; the new cell is judged on its own). Failures or Notes
	// say it too.
	NotCompared string
}

// Comparison is the outcome of comparing a new result with a base.
type Comparison struct {
	Cells []CellComparison
	// Gates holds the absolute gates judged on the new result.
	Gates []result.GateOutcome
}

// Failed reports whether any cell or gate failed.
func (c *Comparison) Failed() bool { return len(c.Failures()) > 0 }

// Failures lists every failure, each naming its cell.
func (c *Comparison) Failures() []string {
	var out []string
	for _, cc := range c.Cells {
		for _, f := range cc.Failures {
			out = append(out, cc.Key+": "+f)
		}
	}
	for _, g := range FailedGates(c.Gates) {
		out = append(out, g.Cell+": gate "+g.Gate+" failed ("+DescribeGate(g)+")")
	}
	return out
}

// Compare compares newDoc with base cell by cell, matching cells by key.
// A cell fails when its verdict in newDoc is not what it expected (an
// invariant broken in a strategy expected to hold, or the cell could not
// run), when any invariant of a cell not expected to break is broken, when
// it is in base but missing from newDoc, or when a threshold of opt is
// crossed. A cell only in newDoc, or whose bug did not reproduce this
// time, is noted.
//
// A cell that cannot be judged is not compared, and says so in
// NotCompared: an interrupted cell of newDoc (its own flag, or newDoc was
// interrupted) counts as missing — it fails when base has the cell, with
// "not compared: interrupted" rather than a verdict change; an
// INCONCLUSIVE cell of newDoc is noted "not judged", neither a pass nor a
// regression; and a base cell that was interrupted or INCONCLUSIVE gives
// no figures to compare with, so the new cell is judged on its own.
func Compare(base, newDoc *result.Document, opt CompareOptions) *Comparison {
	cmp := &Comparison{}
	newCells := map[string]*result.Cell{}
	for i := range newDoc.Cells {
		newCells[newDoc.Cells[i].Key()] = &newDoc.Cells[i]
	}
	seen := map[string]bool{}
	for i := range base.Cells {
		b := &base.Cells[i]
		k := b.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		n := newCells[k]
		cc := compareCell(k, side{b, result.CellInterrupted(base, b)}, side{n, n != nil && result.CellInterrupted(newDoc, n)}, opt)
		cmp.Cells = append(cmp.Cells, cc)
	}
	for i := range newDoc.Cells {
		n := &newDoc.Cells[i]
		if k := n.Key(); !seen[k] {
			seen[k] = true
			cc := compareCell(k, side{}, side{n, result.CellInterrupted(newDoc, n)}, opt)
			cc.Notes = append([]string{"new cell, not in the base"}, cc.Notes...)
			cmp.Cells = append(cmp.Cells, cc)
		}
	}
	cmp.Gates = JudgeGates(newDoc, opt.Gates)
	return cmp
}

// side is a cell of one of the compared results, nil when absent.
type side struct {
	c           *result.Cell
	interrupted bool
}

// notCompared is CellComparison.NotCompared for a cell of an interrupted
// result.
const notCompared = "not compared: interrupted"

func compareCell(key string, bs, ns side, opt CompareOptions) CellComparison {
	b, n := bs.c, ns.c
	cc := CellComparison{Key: key, Base: b, New: n}
	if n == nil {
		cc.Failures = append(cc.Failures, "in the base but missing from the new result")
		return cc
	}
	if b != nil {
		cc.Throughput = Delta{b.ThroughputOps, n.ThroughputOps}
		cc.P50 = Delta{float64(b.Latency.Corrected.P50), float64(n.Latency.Corrected.P50)}
		cc.P99 = Delta{float64(b.Latency.Corrected.P99), float64(n.Latency.Corrected.P99)}
		cc.Max = Delta{float64(b.Latency.Corrected.Max), float64(n.Latency.Corrected.Max)}
	} else {
		cc.Throughput = Delta{New: n.ThroughputOps}
		cc.P50 = Delta{New: float64(n.Latency.Corrected.P50)}
		cc.P99 = Delta{New: float64(n.Latency.Corrected.P99)}
		cc.Max = Delta{New: float64(n.Latency.Corrected.Max)}
	}
	// A new cell that cannot be judged: missing when interrupted, noted
	// when INCONCLUSIVE.
	switch {
	case ns.interrupted:
		cc.NotCompared = notCompared
		if b != nil {
			cc.Failures = append(cc.Failures, notCompared+" (the new result's figures are partial; counted as missing)")
		} else {
			cc.Notes = append(cc.Notes, notCompared)
		}
		return cc
	case n.Verdict == result.Inconclusive:
		cc.NotCompared = "not judged: INCONCLUSIVE"
		if n.Reason != "" {
			cc.NotCompared += ": " + n.Reason
		}
		cc.Notes = append(cc.Notes, cc.NotCompared)
		return cc
	}
	// A base cell that cannot be compared with: the new cell is judged on
	// its own.
	switch {
	case b == nil:
	case bs.interrupted:
		cc.NotCompared = "not compared with the base: interrupted there"
	case b.Verdict == result.Inconclusive:
		cc.NotCompared = "not compared with the base: INCONCLUSIVE there"
	}
	if cc.NotCompared != "" {
		cc.Notes = append(cc.Notes, cc.NotCompared)
		b = nil
	}
	// Correctness.
	switch n.Verdict {
	case result.Fail, result.Error:
		msg := fmt.Sprintf("verdict %s", n.Verdict)
		if b != nil && b.Verdict != n.Verdict {
			msg = fmt.Sprintf("verdict %s → %s", b.Verdict, n.Verdict)
		}
		if n.Error != "" {
			msg += ": " + n.Error
		}
		cc.Failures = append(cc.Failures, msg)
	case result.NotReproduced:
		cc.Notes = append(cc.Notes, "the bug did not reproduce this time (NOT-REPRODUCED)")
	default:
		if b != nil && b.Verdict != n.Verdict {
			cc.Notes = append(cc.Notes, fmt.Sprintf("verdict %s → %s", b.Verdict, n.Verdict))
		}
	}
	if n.Expect != result.Break {
		for _, inv := range n.Invariants {
			if !inv.Holds {
				cc.Failures = append(cc.Failures, fmt.Sprintf("invariant broken: %s: %s", inv.Name, inv.Detail))
			}
		}
	}
	if !opt.perfSelected(key) {
		return cc
	}
	// Performance, only between cells that both measured something.
	if b != nil && b.Ops > 0 && n.Ops > 0 && n.Verdict != result.Unsupported && b.Verdict != result.Unsupported {
		if opt.MaxP99Increase >= 0 && cc.P99.Base > 0 && cc.P99.Change() > opt.MaxP99Increase {
			cc.Failures = append(cc.Failures, fmt.Sprintf("p99 %s → %s (%s, more than +%s)",
				FormatMicros(int64(cc.P99.Base)), FormatMicros(int64(cc.P99.New)), pct(cc.P99.Change()), pctAbs(opt.MaxP99Increase)))
		}
		if opt.MaxThroughputDrop >= 0 && cc.Throughput.Base > 0 && -cc.Throughput.Change() > opt.MaxThroughputDrop {
			cc.Failures = append(cc.Failures, fmt.Sprintf("throughput %.0f → %.0f ops/s (%s, more than -%s)",
				cc.Throughput.Base, cc.Throughput.New, pct(cc.Throughput.Change()), pctAbs(opt.MaxThroughputDrop)))
		}
	}
	if opt.MaxErrorRate >= 0 && n.Ops > 0 {
		if r := ErrorRate(n); r > opt.MaxErrorRate {
			cc.Failures = append(cc.Failures, fmt.Sprintf("error rate %s of %d operations, more than %s",
				pctAbs(r), n.Ops, pctAbs(opt.MaxErrorRate)))
		}
	}
	return cc
}

// pct renders a relative change with its sign, "+12.3%"; "n/a" for NaN.
func pct(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", f*100)
}

// pctAbs renders a fraction as a percentage, "10%".
func pctAbs(f float64) string {
	return strconv.FormatFloat(f*100, 'g', 3, 64) + "%"
}

// WriteText writes the comparison as a terminal table — per cell the
// throughput, p50, p99 and max of base and new with their change, the
// verdict change and the outcome — then every failure and note naming its
// cell, and the gates.
func (c *Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CELL\tOPS/S\tΔ\tP50\tΔ\tP99\tΔ\tMAX\tΔ\tVERDICT\tGATE")
	for _, cc := range c.Cells {
		status := "ok"
		switch {
		case len(cc.Failures) > 0:
			status = "FAIL"
		case cc.unjudged():
			status = "skip"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cc.Key,
			deltaCount(cc.Throughput, cc), pctOf(cc.Throughput, cc),
			deltaMicros(cc.P50, cc), pctOf(cc.P50, cc),
			deltaMicros(cc.P99, cc), pctOf(cc.P99, cc),
			deltaMicros(cc.Max, cc), pctOf(cc.Max, cc),
			verdictChange(cc), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, cc := range c.Cells {
		for _, n := range cc.Notes {
			fmt.Fprintf(w, "note %s: %s\n", cc.Key, n)
		}
	}
	for _, f := range c.Failures() {
		fmt.Fprintln(w, "FAIL "+f)
	}
	if n := len(c.Gates); n > 0 {
		fmt.Fprintf(w, "gates: %d of %d checks held\n", n-len(FailedGates(c.Gates)), n)
	}
	if c.Failed() {
		_, err := fmt.Fprintf(w, "compare: FAIL (%d failures)\n", len(c.Failures()))
		return err
	}
	_, err := fmt.Fprintln(w, "compare: ok")
	return err
}

// WriteMarkdown writes the comparison as Markdown for a pull-request
// comment.
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	bw := &errWriter{w: w}
	status := "✅ no regression"
	if c.Failed() {
		status = fmt.Sprintf("❌ %d failures", len(c.Failures()))
	}
	fmt.Fprintf(bw, "### paybench compare — %s\n\n", status)
	fmt.Fprintln(bw, "| cell | ops/s | p50 | p99 | max | verdict | gate |")
	fmt.Fprintln(bw, "|---|--:|--:|--:|--:|---|---|")
	for _, cc := range c.Cells {
		status := "✅"
		switch {
		case len(cc.Failures) > 0:
			status = "❌"
		case cc.unjudged():
			status = "⚠️"
		}
		fmt.Fprintf(bw, "| %s | %s %s | %s %s | %s %s | %s %s | %s | %s |\n", mdEscape(cc.Key),
			deltaCount(cc.Throughput, cc), pctOf(cc.Throughput, cc), deltaMicros(cc.P50, cc), pctOf(cc.P50, cc),
			deltaMicros(cc.P99, cc), pctOf(cc.P99, cc), deltaMicros(cc.Max, cc), pctOf(cc.Max, cc), verdictChange(cc), status)
	}
	if f := c.Failures(); len(f) > 0 {
		fmt.Fprintln(bw)
		for _, s := range f {
			fmt.Fprintf(bw, "- ❌ %s\n", mdEscape(s))
		}
	}
	first := true
	for _, cc := range c.Cells {
		if cc.NotCompared == "" || len(cc.Failures) > 0 && strings.HasPrefix(cc.Failures[0], cc.NotCompared) {
			continue // compared, or listed as a failure above
		}
		if first {
			fmt.Fprintln(bw)
			first = false
		}
		fmt.Fprintf(bw, "- ⚠️ %s: %s\n", mdEscape(cc.Key), mdEscape(cc.NotCompared))
	}
	return bw.err
}

// unjudged reports whether the new cell was not judged at all: it was
// interrupted or is INCONCLUSIVE.
func (cc CellComparison) unjudged() bool {
	return cc.NotCompared == notCompared || cc.New != nil && cc.New.Verdict == result.Inconclusive
}

func deltaCount(d Delta, cc CellComparison) string {
	switch {
	case cc.New == nil:
		return FormatCount(d.Base) + " → –"
	case cc.Base == nil:
		return "– → " + FormatCount(d.New)
	}
	return FormatCount(d.Base) + " → " + FormatCount(d.New)
}

func deltaMicros(d Delta, cc CellComparison) string {
	switch {
	case cc.New == nil:
		return FormatMicros(int64(d.Base)) + " → –"
	case cc.Base == nil:
		return "– → " + FormatMicros(int64(d.New))
	}
	return FormatMicros(int64(d.Base)) + " → " + FormatMicros(int64(d.New))
}

func pctOf(d Delta, cc CellComparison) string {
	if cc.Base == nil || cc.New == nil || cc.NotCompared != "" || d.Base == 0 && d.New == 0 {
		return ""
	}
	return pct(d.Change())
}

func verdictChange(cc CellComparison) string {
	suffix := ""
	if cc.NotCompared == notCompared {
		suffix = " (interrupted)"
	}
	switch {
	case cc.New == nil:
		return string(cc.Base.Verdict) + " → missing"
	case cc.Base == nil:
		return "new " + string(cc.New.Verdict) + suffix
	case cc.Base.Verdict == cc.New.Verdict:
		return string(cc.New.Verdict) + suffix
	}
	return string(cc.Base.Verdict) + " → " + string(cc.New.Verdict) + suffix
}
