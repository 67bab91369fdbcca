package reports

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/paybench/paybench/reports/result"
)

// ErrBadGate is wrapped by the errors of ParseGate and ParseGates.
var ErrBadGate = errors.New("bad gate")

// ErrBadRule is wrapped by the errors of EvalRule.
var ErrBadRule = errors.New("bad invariant rule")

// Gate metrics.
const (
	MetricP50        = "p50"
	MetricP90        = "p90"
	MetricP99        = "p99"
	MetricP999       = "p999"
	MetricMax        = "max"
	MetricMean       = "mean"
	MetricThroughput = "throughput"
	MetricErrors     = "errors"
	MetricErrorRate  = "error_rate"
	MetricDropped    = "dropped"
)

// GateMetrics lists the metrics a gate may read, in documentation order.
var GateMetrics = []string{MetricP50, MetricP90, MetricP99, MetricP999, MetricMax, MetricMean,
	MetricThroughput, MetricErrors, MetricErrorRate, MetricDropped}

// GateGrammar documents the gate expression language, for help texts.
const GateGrammar = `gates    = gate { "," gate }
gate     = [ cells ":" ] metric op value
cells    = scenario-or-operation [ "/" backend [ "/" strategy ] ]   (globs: * ? [a-z])
metric   = p50 | p90 | p99 | p999 | max | mean          (corrected latency: value needs us, ms or s)
         | throughput                                   (operations per second: a number)
         | errors | dropped                             (counts: a number)
         | error_rate                                   (errors/ops: 0.01 or 1%)
op       = "<" | "<=" | ">" | ">="
examples: p99<5ms,throughput>20000   oversell/*/lua:p999<=50ms   stock.*:error_rate<0.1%`

// Gate is one absolute gate, such as "p99<5ms": a metric of every cell it
// selects must compare to the value as the operator says.
type Gate struct {
	// Expr is the expression as written.
	Expr string
	// Cells selects the cells the gate applies to: a glob per part of
	// "scenario/backend/strategy", missing parts matching anything. Empty
	// selects every cell.
	Cells string
	// Metric is one of GateMetrics.
	Metric string
	// Op is one of < <= > >=.
	Op string
	// Value is the threshold in the metric's base unit: microseconds for
	// latencies, operations per second, a count, or a fraction for
	// error_rate.
	Value float64
}

// ParseGates parses a comma-separated list of gates; blank items are
// ignored.
func ParseGates(list string) ([]Gate, error) {
	var gates []Gate
	for _, item := range strings.Split(list, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		g, err := ParseGate(item)
		if err != nil {
			return nil, err
		}
		gates = append(gates, g)
	}
	return gates, nil
}

// ParseGate parses one gate expression (see GateGrammar).
func ParseGate(expr string) (Gate, error) {
	g := Gate{Expr: strings.TrimSpace(expr)}
	bad := func(format string, args ...any) (Gate, error) {
		return Gate{}, fmt.Errorf("%w %q: %s", ErrBadGate, g.Expr, fmt.Sprintf(format, args...))
	}
	if strings.ContainsFunc(g.Expr, unicode.IsControl) {
		// A line break inside a gate would break every line that
		// reports it.
		return bad("control character in the expression")
	}
	body := g.Expr
	if i := strings.LastIndex(body, ":"); i >= 0 {
		g.Cells, body = strings.TrimSpace(body[:i]), body[i+1:]
		if g.Cells == "" {
			return bad("empty cell selector before ':'")
		}
		if _, err := path.Match(cellPattern(g.Cells), ""); err != nil {
			return bad("cell selector %q: %v", g.Cells, err)
		}
	}
	i := strings.IndexAny(body, "<>")
	if i < 0 {
		if strings.ContainsAny(body, "=!") {
			return bad("operator must be one of < <= > >=")
		}
		return bad("no operator (one of < <= > >=)")
	}
	g.Metric = strings.ToLower(strings.TrimSpace(body[:i]))
	g.Op = body[i : i+1]
	rest := body[i+1:]
	if strings.HasPrefix(rest, "=") {
		g.Op += "="
		rest = rest[1:]
	}
	if strings.ContainsAny(rest, "<>=!") {
		return bad("one operator only (one of < <= > >=)")
	}
	if g.Metric == "" {
		return bad("no metric before %s (one of %s)", g.Op, strings.Join(GateMetrics, " "))
	}
	value := strings.TrimSpace(rest)
	if value == "" {
		return bad("no value after %s", g.Op)
	}
	var err error
	switch g.Metric {
	case MetricP50, MetricP90, MetricP99, MetricP999, MetricMax, MetricMean:
		g.Value, err = parseLatency(value)
	case MetricThroughput:
		g.Value, err = parseNumber(strings.TrimSuffix(strings.TrimSuffix(value, "ops/s"), "/s"))
	case MetricErrors, MetricDropped:
		g.Value, err = parseNumber(value)
	case MetricErrorRate:
		g.Value, err = parseRate(value)
	default:
		return bad("unknown metric %q (one of %s)", g.Metric, strings.Join(GateMetrics, " "))
	}
	if err != nil {
		return bad("%v", err)
	}
	return g, nil
}

// parseLatency parses a latency with its unit into microseconds.
func parseLatency(s string) (float64, error) {
	units := []struct {
		suffix string
		scale  float64
	}{{"us", 1}, {"µs", 1}, {"ms", 1e3}, {"s", 1e6}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := parseNumber(num)
			return v * u.scale, err
		}
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("latency %q needs a unit: us, ms or s", s)
	}
	return 0, fmt.Errorf("latency %q is not a number with a unit us, ms or s", s)
}

// parseNumber parses a finite, non-negative number.
func parseNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return v, nil
}

// parseRate parses a fraction (0.01) or a percentage (1%) into a fraction.
func parseRate(s string) (float64, error) {
	if num, ok := strings.CutSuffix(s, "%"); ok {
		v, err := parseNumber(num)
		if err == nil && v > 100 {
			err = fmt.Errorf("%q is above 100%%", s)
		}
		return v / 100, err
	}
	v, err := parseNumber(s)
	if err == nil && v > 1 {
		err = fmt.Errorf("rate %q is above 1 (write a percentage as %s%%)", s, s)
	}
	return v, err
}

// ParsePercent parses a relative threshold such as "10%" or "0.1" into a
// fraction; "" and "none" give -1 (no threshold).
func ParsePercent(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" || s == "off" {
		return -1, nil
	}
	if num, ok := strings.CutSuffix(s, "%"); ok {
		v, err := parseNumber(num)
		return v / 100, err
	}
	return parseNumber(s)
}

// cellPattern pads a selector to three globbed parts.
func cellPattern(sel string) string {
	parts := strings.Split(sel, "/")
	for len(parts) < 3 {
		parts = append(parts, "*")
	}
	return strings.Join(parts, "/")
}

// Selects reports whether the gate applies to c: its selector matches and
// the cell's figures can be judged. UNSUPPORTED and ERROR cells are judged
// by their verdict; INCONCLUSIVE and interrupted cells are not judged at
// all (JudgeGates also skips every cell of an interrupted document).
func (g Gate) Selects(c *result.Cell) bool {
	if !c.Verdict.Judged() || c.Interrupted {
		return false
	}
	if g.Cells == "" {
		return true
	}
	ok, _ := path.Match(cellPattern(g.Cells), c.Key())
	return ok
}

// Measure returns c's value of the gate's metric, in the gate's unit.
func (g Gate) Measure(c *result.Cell) float64 {
	return CellMetric(c, g.Metric)
}

// CellMetric returns c's value of a gate metric: microseconds for
// latencies (corrected), operations per second, counts, or a fraction.
func CellMetric(c *result.Cell, metric string) float64 {
	l := c.Latency.Corrected
	switch metric {
	case MetricP50:
		return float64(l.P50)
	case MetricP90:
		return float64(l.P90)
	case MetricP99:
		return float64(l.P99)
	case MetricP999:
		return float64(l.P999)
	case MetricMax:
		return float64(l.Max)
	case MetricMean:
		return l.Mean
	case MetricThroughput:
		return c.ThroughputOps
	case MetricErrors:
		return float64(ErrorCount(c))
	case MetricErrorRate:
		return ErrorRate(c)
	case MetricDropped:
		return float64(c.Dropped)
	}
	return math.NaN()
}

// ErrorCount returns the number of failed operations of c.
func ErrorCount(c *result.Cell) int64 {
	var n int64
	for _, v := range c.Errors {
		n += v
	}
	return n
}

// ErrorRate returns failed operations over all operations (0 when none
// ran).
func ErrorRate(c *result.Cell) float64 {
	if c.Ops <= 0 {
		return 0
	}
	return float64(ErrorCount(c)) / float64(c.Ops)
}

// Holds reports whether value passes the gate.
func (g Gate) Holds(value float64) bool { return compare(value, g.Op, g.Value) }

// FormatValue renders a value of the gate's metric with its unit.
func (g Gate) FormatValue(v float64) string { return FormatMetric(g.Metric, v) }

// FormatMetric renders a value of a gate metric with its unit.
func FormatMetric(metric string, v float64) string {
	switch metric {
	case MetricP50, MetricP90, MetricP99, MetricP999, MetricMax, MetricMean:
		return FormatMicros(int64(math.Round(v)))
	case MetricThroughput:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ops/s"
	case MetricErrorRate:
		return strconv.FormatFloat(v*100, 'g', 4, 64) + "%"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// JudgeGates evaluates every gate on every cell it selects, in cell order.
// The cells of an interrupted document are treated as missing: their
// figures are partial, so no gate is judged on them.
func JudgeGates(doc *result.Document, gates []Gate) []result.GateOutcome {
	var out []result.GateOutcome
	for _, g := range gates {
		for i := range doc.Cells {
			c := &doc.Cells[i]
			if !g.Selects(c) || result.CellInterrupted(doc, c) {
				continue
			}
			v := g.Measure(c)
			out = append(out, result.GateOutcome{Gate: g.Expr, Cell: c.Key(), Value: v, Holds: g.Holds(v)})
		}
	}
	return out
}

// FailedGates returns the outcomes that did not hold.
func FailedGates(outcomes []result.GateOutcome) []result.GateOutcome {
	var out []result.GateOutcome
	for _, o := range outcomes {
		if !o.Holds {
			out = append(out, o)
		}
	}
	return out
}

// DescribeGate renders an outcome as one line: "FAIL p99<5ms on
// oversell/goredis/naive: p99 is 24.34ms".
func DescribeGate(o result.GateOutcome) string {
	status := "ok"
	if !o.Holds {
		status = "FAIL"
	}
	g, err := ParseGate(o.Gate)
	if err != nil {
		return fmt.Sprintf("%s %s on %s: %g", status, o.Gate, o.Cell, o.Value)
	}
	return fmt.Sprintf("%s %s on %s: %s is %s", status, o.Gate, o.Cell, g.Metric, g.FormatValue(o.Value))
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "==":
		return a == b
	case "!=":
		return a != b
	}
	return false
}

// ruleOps are the operators of an invariant rule, longest first.
var ruleOps = []string{"<=", ">=", "==", "!=", "<", ">"}

// ParseRule splits an invariant rule ("oversold_units <= 0") into its
// operands and operator.
func ParseRule(rule string) (left, op, right string, err error) {
	for i := 0; i < len(rule); i++ {
		for _, o := range ruleOps {
			if strings.HasPrefix(rule[i:], o) {
				left, right = strings.TrimSpace(rule[:i]), strings.TrimSpace(rule[i+len(o):])
				if left == "" || right == "" || strings.ContainsAny(right, "<>=!") {
					return "", "", "", fmt.Errorf("%w %q: want FIGURE OP FIGURE-OR-NUMBER", ErrBadRule, rule)
				}
				return left, o, right, nil
			}
		}
	}
	return "", "", "", fmt.Errorf("%w %q: no operator (one of < <= > >= == !=)", ErrBadRule, rule)
}

// RuleFigures returns the figure names a rule reads (numbers excluded).
func RuleFigures(rule string) ([]string, error) {
	l, _, r, err := ParseRule(rule)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range []string{l, r} {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// EvalRule evaluates an invariant rule on a cell's figures.
func EvalRule(rule string, figures map[string]float64) (bool, error) {
	l, op, r, err := ParseRule(rule)
	if err != nil {
		return false, err
	}
	operand := func(s string) (float64, error) {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			return v, nil
		}
		v, ok := figures[s]
		if !ok {
			return 0, fmt.Errorf("%w %q: no figure %q", ErrBadRule, rule, s)
		}
		return v, nil
	}
	a, err := operand(l)
	if err != nil {
		return false, err
	}
	b, err := operand(r)
	if err != nil {
		return false, err
	}
	return compare(a, op, b), nil
}
