package reports

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/paybench/paybench/reports/result"
)

// Row is one row of the summary matrix: a scenario or operation run with
// one strategy, and its cell on each backend.
type Row struct {
	// Name is the scenario or operation.
	Name string
	// Load is true for an operation's load row.
	Load     bool
	Strategy string
	// Cells maps a backend to the row's cell on it.
	Cells map[string]*result.Cell
}

// Matrix is a document's cells arranged by (name, strategy) and backend,
// in the order the cells first appear.
type Matrix struct {
	Backends []string
	Rows     []*Row
}

// BuildMatrix arranges doc's cells. A later cell of the same (name,
// backend, strategy) replaces an earlier one.
func BuildMatrix(doc *result.Document) *Matrix {
	m := &Matrix{}
	rows := map[[2]string]*Row{}
	seen := map[string]bool{}
	for i := range doc.Cells {
		c := &doc.Cells[i]
		if !seen[c.Backend] {
			seen[c.Backend] = true
			m.Backends = append(m.Backends, c.Backend)
		}
		k := [2]string{c.Name(), c.Strategy}
		r, ok := rows[k]
		if !ok {
			r = &Row{Name: c.Name(), Load: c.Scenario == "", Strategy: c.Strategy, Cells: map[string]*result.Cell{}}
			rows[k] = r
			m.Rows = append(m.Rows, r)
		}
		r.Cells[c.Backend] = c
	}
	return m
}

// Label is the row's name and strategy, "oversell · naive".
func (r *Row) Label() string { return r.Name + " · " + r.Strategy }

// MatrixCell renders a cell for the matrix: verdict, throughput and
// corrected p99, such as "PASS 20112/s p99 9.54ms", then "(interrupted)"
// for a cell cut short.
func MatrixCell(c *result.Cell) string {
	if c == nil {
		return "-"
	}
	s := string(c.Verdict)
	if c.Ops > 0 {
		s = fmt.Sprintf("%s %s/s p99 %s", c.Verdict, FormatCount(c.ThroughputOps), FormatMicros(c.Latency.Corrected.P99))
	}
	if c.Interrupted {
		s += " (interrupted)"
	}
	return s
}

// FormatCount renders a rate or count compactly: 812, 20.1k, 1.25M.
func FormatCount(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}

// WriteMatrix writes the summary matrix as a terminal table: a row per
// scenario or operation and strategy, a column per backend, each cell
// with its verdict, throughput and p99; then the notes of every cell whose
// verdict is not what it expected or that broke an invariant, failed
// operations or gates, and the server line.
func WriteMatrix(w io.Writer, doc *result.Document) error {
	m := BuildMatrix(doc)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "SCENARIO/OPERATION\tSTRATEGY")
	for _, b := range m.Backends {
		fmt.Fprint(tw, "\t"+b)
	}
	fmt.Fprintln(tw)
	for _, r := range m.Rows {
		fmt.Fprintf(tw, "%s\t%s", r.Name, r.Strategy)
		for _, b := range m.Backends {
			fmt.Fprint(tw, "\t"+MatrixCell(r.Cells[b]))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeFooter(w, doc)
	return nil
}

// writeFooter writes the tally of verdicts, the notes of the cells that
// are not as expected or were interrupted,
// failed gates, the server line and the document's warnings.
func writeFooter(w io.Writer, doc *result.Document) {
	t := Tally(doc)
	fmt.Fprintf(w, "%d cells: %s\n", len(doc.Cells), t)
	for i := range doc.Cells {
		c := &doc.Cells[i]
		if !c.Verdict.AsExpected() || c.Interrupted {
			writeNotes(w, *c)
		}
	}
	for _, g := range FailedGates(doc.Gates) {
		fmt.Fprintln(w, "gate "+DescribeGate(g))
	}
	s := doc.Fairness.Server
	fmt.Fprintf(w, "server: %s redis %s at %s · GOMAXPROCS %d · %s\n", s.Kind, s.Version, s.Address, doc.Fairness.GOMAXPROCS, doc.Fairness.GoVersion)
	if doc.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: the run was stopped early; figures are partial")
	}
	writeWarnings(w, doc)
}

// VerdictCount is how many cells got one verdict.
type VerdictCount struct {
	Verdict result.Verdict
	N       int
}

// Tallies counts doc's cells per verdict.
type Tallies []VerdictCount

// Tally counts doc's cells per verdict, in a fixed verdict order.
func Tally(doc *result.Document) Tallies {
	order := []result.Verdict{result.Pass, result.Reproduced, result.Measured, result.Fail, result.NotReproduced, result.Error,
		result.Inconclusive, result.Unsupported}
	n := map[result.Verdict]int{}
	for _, c := range doc.Cells {
		n[c.Verdict]++
	}
	var out Tallies
	for _, v := range order {
		if n[v] > 0 {
			out = append(out, VerdictCount{v, n[v]})
			delete(n, v)
		}
	}
	for _, c := range doc.Cells { // verdicts outside the known set, in cell order
		if n[c.Verdict] > 0 {
			out = append(out, VerdictCount{c.Verdict, n[c.Verdict]})
			delete(n, c.Verdict)
		}
	}
	return out
}

// String renders the tally, "4 PASS · 2 REPRODUCED · 1 FAIL".
func (t Tallies) String() string {
	s := ""
	for i, vc := range t {
		if i > 0 {
			s += " · "
		}
		s += fmt.Sprintf("%d %s", vc.N, vc.Verdict)
	}
	if s == "" {
		return "none"
	}
	return s
}
