package reports

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paybench/paybench/reports/result"
)

// Text writes the terminal table: a row per cell with operations,
// throughput, corrected latency percentiles and the verdict, each broken
// invariant with its figures under its row, the cell's summary line, and
// the document's warnings.
func Text(w io.Writer, doc *result.Document) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	first := "SCENARIO"
	if doc.Kind == "load" {
		first = "OPERATION"
	}
	fmt.Fprintln(tw, first+"\tBACKEND\tSTRATEGY\tOPS\tOPS/S\tP50\tP99\tP99.9\tMAX\tVERDICT")
	for _, c := range doc.Cells {
		name := c.Scenario
		if name == "" {
			name = c.Operation
		}
		l := c.Latency.Corrected
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\n",
			name, c.Backend, c.Strategy, c.Ops, c.ThroughputOps,
			FormatMicros(l.P50), FormatMicros(l.P99), FormatMicros(l.P999), FormatMicros(l.Max), c.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range doc.Cells {
		writeNotes(w, c)
	}
	s := doc.Fairness.Server
	fmt.Fprintf(w, "server: %s redis %s at %s · GOMAXPROCS %d · %s\n", s.Kind, s.Version, s.Address, doc.Fairness.GOMAXPROCS, doc.Fairness.GoVersion)
	if doc.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: the run was stopped early; figures are partial")
	}
	writeWarnings(w, doc)
	return nil
}

// writeWarnings writes the document's warnings, one line each.
func writeWarnings(w io.Writer, doc *result.Document) {
	for _, s := range doc.Warnings {
		fmt.Fprintln(w, "warning: "+s)
	}
}

// FormatMicros renders a latency in microseconds with a readable unit.
func FormatMicros(us int64) string {
	if us == 0 {
		return "-"
	}
	d := time.Duration(us) * time.Microsecond
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", us)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}

// writeNotes writes a cell's summary, error or reason, whether it was
// interrupted, broken invariants, faults and error classes under the
// table.
func writeNotes(w io.Writer, c result.Cell) {
	var notes []string
	if c.Error != "" {
		notes = append(notes, "error: "+c.Error)
	}
	if c.Reason != "" {
		notes = append(notes, "reason: "+c.Reason)
	}
	if c.Interrupted {
		notes = append(notes, "interrupted: figures are partial")
	}
	for _, inv := range c.Invariants {
		if !inv.Holds {
			notes = append(notes, fmt.Sprintf("✗ %s: %s", inv.Name, inv.Detail))
		}
	}
	notes = append(notes, HistoryNotes(c.History)...)
	for _, f := range c.Faults {
		notes = append(notes, "fault: "+FaultLine(f))
	}
	notes = append(notes, errorNotes(c)...)
	notes = append(notes, shapeNotes(c)...)
	notes = append(notes, ClusterNotes(c)...)
	if c.Summary == "" && len(notes) == 0 {
		return
	}
	name := c.Scenario
	if name == "" {
		name = c.Operation
	}
	fmt.Fprintf(w, "%s %s/%s %s: %s\n", name, c.Backend, c.Strategy, c.Verdict, c.Summary)
	for _, n := range notes {
		fmt.Fprintf(w, "    %s\n", n)
	}
}

// errorNotes returns one line per error class of c, the most frequent
// first: the class, how many operations failed with it and the first
// message of that class, such as
//
//	errors: noperm ×1000 — "NOPERM this user has no permissions to run the 'evalsha' command"
func errorNotes(c result.Cell) []string {
	classes := make([]string, 0, len(c.Errors))
	for class := range c.Errors {
		classes = append(classes, class)
	}
	sort.Slice(classes, func(i, j int) bool {
		a, b := classes[i], classes[j]
		if c.Errors[a] != c.Errors[b] {
			return c.Errors[a] > c.Errors[b]
		}
		return a < b
	})
	notes := make([]string, 0, len(classes))
	for _, class := range classes {
		n := fmt.Sprintf("errors: %s ×%d", class, c.Errors[class])
		if msg := c.ErrorSamples[class]; msg != "" {
			n += ` — "` + msg + `"`
		}
		notes = append(notes, n)
	}
	return notes
}

// FaultLine describes one fault of a cell's log as it happened, its times
// from the cell's start:
//
//	pause:1s@2s (SIGSTOP/SIGCONT) 2.00s–3.01s ×1
//	kill-conns@1s/1s (CLIENT KILL ID) 1.00s–3.00s ×3, 6 connections
//	oom@10s never fired (the cell ended first)
func FaultLine(f result.Fault) string {
	var b strings.Builder
	b.WriteString(f.Spec)
	if f.Method != "" {
		b.WriteString(" (" + f.Method + ")")
	}
	if f.Count == 0 {
		b.WriteString(" never fired (the cell ended first)")
	} else {
		fmt.Fprintf(&b, " %.2fs–%.2fs ×%d", f.Start, max(f.End, f.Start), f.Count)
	}
	if f.Hits > 0 {
		fmt.Fprintf(&b, ", %d connections", f.Hits)
	}
	if f.Error != "" {
		b.WriteString(" [failed: " + f.Error + "]")
	}
	if f.From != "" {
		b.WriteString(" (from " + f.From + ")")
	}
	return b.String()
}

// HistoryNotes describes a cell's history check in a few lines: the
// result with its counts, and for a violation the witness and the
// operations involved, such as
//
//	history: not linearizable (stock counter: 1243 operations, 1 partition, checked in 0.05s)
//	✗ history, item sku-1: buyers 17 and 42 were both told 7 remained
//	    buyer 17: buy 1 → OK, 7 left [1.204ms–1.913ms]
func HistoryNotes(h *result.History) []string {
	if h == nil {
		return nil
	}
	var b strings.Builder
	b.WriteString("history: " + strings.ReplaceAll(h.Result, "-", " "))
	if h.Result == result.HistoryNotChecked {
		fmt.Fprintf(&b, " (%s: %s)", h.Model, h.Reason)
		return []string{b.String()}
	}
	fmt.Fprintf(&b, " (%s: %d operations", h.Model, h.Ops)
	if h.UnknownOutcomes > 0 {
		fmt.Fprintf(&b, ", %d with unknown outcome", h.UnknownOutcomes)
	}
	fmt.Fprintf(&b, ", %d partitions, checked in %.2fs)", h.Partitions, h.CheckSec)
	notes := []string{b.String()}
	switch h.Result {
	case result.HistoryUnknown:
		notes = append(notes, "? history: "+h.Reason)
	case result.HistoryNotLinearizable:
		w := "✗ history"
		if h.Partition != "" {
			w += ", " + h.Partition
		}
		notes = append(notes, w+": "+h.Witness)
		for _, op := range h.WitnessOps {
			notes = append(notes, "    "+op)
		}
		if h.Visualization != "" {
			notes = append(notes, "    visualization: "+h.Visualization)
		}
	}
	return notes
}
