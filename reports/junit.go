package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

// JUnitSuites is the root of a JUnit XML report.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one cell: a (scenario or operation, backend, strategy).
type JUnitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []JUnitProperty `xml:"properties>property,omitempty"`
	Cases      []JUnitCase     `xml:"testcase"`
}

// JUnitProperty is one name/value fact of a suite.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one invariant of a cell (or the cell's run itself, its
// reproduction, or a gate).
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *JUnitMessage `xml:"failure,omitempty"`
	Error     *JUnitMessage `xml:"error,omitempty"`
	Skipped   *JUnitMessage `xml:"skipped,omitempty"`
	SystemOut *JUnitText    `xml:"system-out,omitempty"`
}

// JUnitText is an element's text, written as CDATA so that line breaks
// stay line breaks.
type JUnitText struct {
	Text string `xml:",cdata"`
}

// text returns s as element text, nil when empty.
func text(s string) *JUnitText {
	if s == "" {
		return nil
	}
	return &JUnitText{Text: s}
}

// JUnitMessage is a failure, error or skip: a one-line message and the
// figures in its body.
type JUnitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",cdata"`
}

// BuildJUnit turns doc into a JUnit report: a suite per cell and a test
// case per invariant. An invariant broken in a cell expected to hold is a
// failure whose message is the invariant's figures; in a cell expected to
// break it is the bug reproduced, which passes, and an extra case
// "reproduces the bug" fails when no invariant broke. A cell that could
// not run is an error; an unsupported one is skipped; an INCONCLUSIVE one
// is skipped too — its "runs" case and every invariant's, with the reason
// — since it is neither a pass nor a failure (as compare treats it: not
// judged), and an <error> would fail the build on a cell paybench itself
// declines to judge; a load cell with no invariants has one passing
// "measured" case. Every gate judged on a cell is one more case.
func BuildJUnit(doc *result.Document) *JUnitSuites {
	root := &JUnitSuites{Name: "paybench " + doc.Kind}
	var total float64
	gates := map[string][]result.GateOutcome{}
	for _, g := range doc.Gates {
		gates[g.Cell] = append(gates[g.Cell], g)
	}
	for i := range doc.Cells {
		c := &doc.Cells[i]
		s := JUnitSuite{
			Name:     c.Key(),
			Time:     seconds(c.ElapsedSec),
			Hostname: doc.Host,
		}
		if !doc.Started.IsZero() {
			s.Timestamp = doc.Started.UTC().Format("2006-01-02T15:04:05")
		}
		total += c.ElapsedSec
		s.Properties = cellProperties(c)
		class := "paybench." + c.Name() + "." + c.Backend + "." + c.Strategy
		figures := figureText(c)
		add := func(tc JUnitCase) {
			tc.Classname = class
			if tc.Time == "" {
				tc.Time = "0"
			}
			s.Cases = append(s.Cases, tc)
		}
		switch c.Verdict {
		case result.Error:
			add(JUnitCase{Name: "runs", Time: s.Time, Error: &JUnitMessage{Message: c.Error, Type: "ERROR", Body: figures}})
		case result.Unsupported:
			add(JUnitCase{Name: "runs", Skipped: &JUnitMessage{Message: c.Error}})
		case result.Inconclusive:
			add(JUnitCase{Name: "runs", Time: s.Time, Skipped: &JUnitMessage{Message: inconclusive(c), Type: "INCONCLUSIVE", Body: figures}})
		}
		for _, inv := range c.Invariants {
			tc := JUnitCase{Name: inv.Name}
			switch {
			case inv.Holds:
				tc.SystemOut = text(inv.Detail)
			case c.Expect == result.Break:
				tc.SystemOut = text("reproduced: " + inv.Detail + "\n" + figures)
			case c.Verdict == result.Error:
				tc.Skipped = &JUnitMessage{Message: "the cell did not run to its end: " + inv.Detail}
			case c.Verdict == result.Inconclusive:
				tc.Skipped = &JUnitMessage{Message: inconclusive(c) + ": " + inv.Detail}
			default:
				tc.Failure = &JUnitMessage{Message: inv.Detail, Type: "invariant", Body: invariantBody(c, inv, figures)}
			}
			add(tc)
		}
		if c.Expect == result.Break && c.Verdict.Judged() {
			tc := JUnitCase{Name: "reproduces the bug", Time: s.Time, SystemOut: text(c.Summary)}
			if c.Verdict == result.NotReproduced {
				tc.Failure = &JUnitMessage{Message: "expected the strategy to break an invariant; every invariant held: " + c.Summary,
					Type: "not-reproduced", Body: figures}
			}
			add(tc)
		}
		if len(c.Invariants) == 0 && c.Verdict.Judged() {
			add(JUnitCase{Name: "measured", Time: s.Time, SystemOut: text(measuredText(c))})
		}
		for _, g := range gates[c.Key()] {
			tc := JUnitCase{Name: "gate " + g.Gate}
			if !g.Holds {
				tc.Failure = &JUnitMessage{Message: DescribeGate(g), Type: "gate", Body: measuredText(c)}
			}
			add(tc)
		}
		for _, tc := range s.Cases {
			s.Tests++
			switch {
			case tc.Failure != nil:
				s.Failures++
			case tc.Error != nil:
				s.Errors++
			case tc.Skipped != nil:
				s.Skipped++
			}
		}
		root.Tests += s.Tests
		root.Failures += s.Failures
		root.Errors += s.Errors
		root.Skipped += s.Skipped
		root.Suites = append(root.Suites, s)
	}
	root.Time = seconds(total)
	return root
}

// JUnit writes doc as JUnit XML (see BuildJUnit).
func JUnit(w io.Writer, doc *result.Document) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(BuildJUnit(doc)); err != nil {
		return fmt.Errorf("encode junit: %w", err)
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// inconclusive is the message of an INCONCLUSIVE cell's skipped cases.
func inconclusive(c *result.Cell) string {
	if c.Reason == "" {
		return "inconclusive: the cell cannot be judged"
	}
	return "inconclusive: " + c.Reason
}

func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

func cellProperties(c *result.Cell) []JUnitProperty {
	l := c.Latency.Corrected
	props := []JUnitProperty{
		{"backend", c.Backend},
		{"strategy", c.Strategy},
		{"expect", string(c.Expect)},
		{"verdict", string(c.Verdict)},
		{"ops", strconv.FormatInt(c.Ops, 10)},
		{"throughput_ops", strconv.FormatFloat(c.ThroughputOps, 'f', 1, 64)},
		{"p50_us", strconv.FormatInt(l.P50, 10)},
		{"p99_us", strconv.FormatInt(l.P99, 10)},
		{"p999_us", strconv.FormatInt(l.P999, 10)},
		{"max_us", strconv.FormatInt(l.Max, 10)},
		{"errors", strconv.FormatInt(ErrorCount(c), 10)},
	}
	if c.Scenario != "" {
		props = append([]JUnitProperty{{"scenario", c.Scenario}}, props...)
	} else {
		props = append([]JUnitProperty{{"operation", c.Operation}}, props...)
	}
	return props
}

// invariantBody is a failure's body: the summary, the invariant and its
// rule, and every figure of the cell.
func invariantBody(c *result.Cell, inv result.Invariant, figures string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", c.Key(), c.Verdict, c.Summary)
	fmt.Fprintf(&b, "invariant: %s\ndetail: %s\n", inv.Name, inv.Detail)
	if inv.Rule != "" {
		fmt.Fprintf(&b, "rule: %s\n", inv.Rule)
	}
	b.WriteString(figures)
	return b.String()
}

// figureText lists a cell's figures, one "name = value" a line, sorted.
func figureText(c *result.Cell) string {
	names := make([]string, 0, len(c.Figures))
	for k := range c.Figures {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s = %s\n", k, strconv.FormatFloat(c.Figures[k], 'f', -1, 64))
	}
	return b.String()
}

// measuredText is a cell's measurement in a few lines.
func measuredText(c *result.Cell) string {
	l := c.Latency.Corrected
	s := fmt.Sprintf("ops %d, %.0f ops/s, p50 %s, p99 %s, p99.9 %s, max %s, errors %d, dropped %d\n",
		c.Ops, c.ThroughputOps, FormatMicros(l.P50), FormatMicros(l.P99), FormatMicros(l.P999), FormatMicros(l.Max), ErrorCount(c), c.Dropped)
	if c.Summary != "" {
		s = c.Summary + "\n" + s
	}
	return s + figureText(c)
}
