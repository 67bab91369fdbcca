package reports

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

//go:embed html.tmpl
var htmlTemplate string

var htmlPage = template.Must(template.New("page").Funcs(template.FuncMap{
	"micros": FormatMicros,
	"inc":    func(i int) int { return i + 1 },
	"isum": func(m map[string]int64) int64 {
		var n int64
		for _, v := range m {
			n += v
		}
		return n
	},
	"microsf": func(us float64) string { return FormatMicros(int64(math.Round(us))) },
	"count":   FormatCount,
	"ops":     func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) },
	"fig":     func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
	"class":   verdictClass,
	"errs":    ErrorCount,
	"keys":    sortedKeys[float64],
	"skeys":   sortedKeys[string],
	"ikeys":   sortedKeys[int64],
	"lkeys":   sortedKeys[result.Latency],
	"mkeys":   sortedKeys[map[string]string],
	"gate":    DescribeGate,
	"join":    strings.Join,
	"fault":   FaultLine,
	"cluster": ClusterNotes,
	"historyClass": func(r string) string {
		switch r {
		case result.HistoryLinearizable:
			return "held"
		case result.HistoryNotLinearizable:
			return "broken"
		}
		return "inconclusive"
	},
}).Parse(htmlTemplate))

// htmlRow is one matrix row with its plots.
type htmlRow struct {
	*Row
	ID         string
	Details    []htmlCell
	Comparison template.HTML
}

// htmlCell is one cell with its plot.
type htmlCell struct {
	*result.Cell
	Plot template.HTML
}

// htmlDoc is what the template renders.
type htmlDoc struct {
	Doc      *result.Document
	Title    string
	Facts    []string
	Tally    Tallies
	Matrix   *Matrix
	Rows     []htmlRow
	Overview template.HTML
	Failed   []result.GateOutcome
	// Colours maps each backend to its colour in the plots.
	Colours []backendColour
}

// backendColour is a backend and its colour in the plots.
type backendColour struct {
	Backend string
	CSS     template.CSS
}

// HTML writes the result as one self-contained HTML page that needs no
// network: inline CSS and inline SVG plots (gonum.org/v1/plot). It shows
// the summary matrix, the backend-vs-backend comparison (throughput and
// p99 bars, and each row's percentile curves overlaid), and per cell its
// invariants, latency table, figures, the faults applied to it, a
// percentile plot on log scales (corrected against uncorrected) and
// throughput and p99 over time, the faults shaded on the time axis.
func HTML(w io.Writer, doc *result.Document) error {
	m := BuildMatrix(doc)
	d := htmlDoc{
		Doc:    doc,
		Title:  "paybench " + doc.Kind,
		Facts:  runFacts(doc),
		Tally:  Tally(doc),
		Matrix: m,
		Failed: FailedGates(doc.Gates),
	}
	for i, b := range m.Backends {
		c := colour(i)
		d.Colours = append(d.Colours, backendColour{b, template.CSS(fmt.Sprintf("background:#%02x%02x%02x", c.R, c.G, c.B))})
	}
	ov, err := overviewSVG(m)
	if err != nil {
		return err
	}
	d.Overview = template.HTML(ov) // generated here, not user input
	for i, r := range m.Rows {
		hr := htmlRow{Row: r, ID: fmt.Sprintf("row-%d", i+1)}
		cmp, err := comparisonSVG(r, m.Backends)
		if err != nil {
			return err
		}
		hr.Comparison = template.HTML(cmp)
		for j, b := range m.Backends {
			c := r.Cells[b]
			if c == nil {
				continue
			}
			svg, err := cellSVG(c, colour(j))
			if err != nil {
				return err
			}
			hr.Details = append(hr.Details, htmlCell{Cell: c, Plot: template.HTML(svg)})
		}
		d.Rows = append(d.Rows, hr)
	}
	if err := htmlPage.Execute(w, d); err != nil {
		return fmt.Errorf("render html: %w", err)
	}
	return nil
}

// verdictClass is the CSS class of a verdict.
func verdictClass(v result.Verdict) string {
	switch {
	case v == result.Unsupported:
		return "na"
	case v == result.Inconclusive:
		return "inconclusive"
	case v == result.Measured:
		return "measured"
	case v.AsExpected():
		return "ok"
	default:
		return "bad"
	}
}
