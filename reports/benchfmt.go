package reports

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"unicode"

	"golang.org/x/perf/benchfmt"

	"github.com/paybench/paybench/reports/result"
)

// Units of the Go benchmark output besides ns/op.
const (
	unitP50        = "p50-ns/op"
	unitP99        = "p99-ns/op"
	unitP999       = "p99.9-ns/op"
	unitThroughput = "ops/s"
	unitErrors     = "errors/op"
)

// BenchFmt writes doc in the Go benchmark format that benchstat reads, with
// golang.org/x/perf/benchfmt: a line per cell that ran and can be judged
// (not INCONCLUSIVE nor interrupted, whose figures benchstat would compare
// as if they were whole), named after Go's sub-benchmarks, such as
//
//	BenchmarkStockDeduct/backend=rueidis/strategy=lua-2  81234  49.1 ns/op  1051 p50-ns/op  ...
//
// The iterations are the cell's operations; ns/op is the wall time per
// operation (1e9 / throughput, as b.RunParallel reports it), and the
// corrected latency percentiles, throughput and error share follow as
// extra units. File configuration lines carry the run's facts (goos,
// goarch, pkg, cpu count, redis version, commit, libraries), so that
// benchstat can tell two runs apart.
func BenchFmt(w io.Writer, doc *result.Document) error {
	bw := benchfmt.NewWriter(w)
	for _, um := range []struct{ unit, better string }{
		{unitThroughput, "higher"}, {unitErrors, "lower"},
	} {
		if err := bw.Write(&benchfmt.UnitMetadata{UnitMetadataKey: benchfmt.UnitMetadataKey{Unit: um.unit, Key: "better"}, OrigUnit: um.unit, Value: um.better}); err != nil {
			return err
		}
	}
	cfg := benchConfig(doc)
	for i := range doc.Cells {
		c := &doc.Cells[i]
		if c.Ops == 0 || c.ThroughputOps <= 0 || c.Verdict == result.Inconclusive || result.CellInterrupted(doc, c) {
			continue
		}
		l := c.Latency.Corrected
		r := &benchfmt.Result{
			Config: cfg,
			Name:   benchfmt.Name(BenchName(c, doc.Fairness.GOMAXPROCS)),
			Iters:  int(c.Ops),
			Values: []benchfmt.Value{
				{Value: round(1e9/c.ThroughputOps, 1), Unit: "ns/op"},
				{Value: float64(l.P50) * 1e3, Unit: unitP50},
				{Value: float64(l.P99) * 1e3, Unit: unitP99},
				{Value: float64(l.P999) * 1e3, Unit: unitP999},
				{Value: round(c.ThroughputOps, 1), Unit: unitThroughput},
				{Value: round(ErrorRate(c), 6), Unit: unitErrors},
			},
		}
		if err := bw.Write(r); err != nil {
			return fmt.Errorf("write benchmark %s: %w", r.Name, err)
		}
	}
	return nil
}

// round rounds v to the given decimals.
func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

// benchConfig is the file configuration of the benchmark output.
func benchConfig(doc *result.Document) []benchfmt.Config {
	f := doc.Fairness
	kv := [][2]string{
		{"goos", f.OS},
		{"goarch", f.Arch},
		{"pkg", "github.com/paybench/paybench"},
		{"paybench-kind", doc.Kind},
		{"paybench-commit", doc.Tool.Commit},
		{"redis", f.Server.Version},
		{"redis-kind", f.Server.Kind},
		{"go", f.GoVersion},
	}
	if n := f.NumCPU; n > 0 {
		kv = append(kv, [2]string{"cpus", fmt.Sprint(n)})
	}
	for _, m := range sortedKeys(f.Libraries) {
		kv = append(kv, [2]string{shortModule(m), f.Libraries[m]})
	}
	var cfg []benchfmt.Config
	for _, p := range kv {
		if p[1] != "" {
			cfg = append(cfg, benchfmt.Config{Key: p[0], Value: []byte(p[1]), File: true})
		}
	}
	return cfg
}

// BenchName is a cell's Go benchmark name without the "Benchmark" prefix:
// the scenario or operation in CamelCase, then backend and strategy as
// key=value sub-benchmarks, then "-GOMAXPROCS" when above 1, as go test
// writes it: StockDeduct/backend=rueidis/strategy=lua-2.
func BenchName(c *result.Cell, gomaxprocs int) string {
	name := camel(c.Name()) + "/backend=" + benchPart(c.Backend) + "/strategy=" + benchPart(c.Strategy)
	if gomaxprocs > 1 {
		name += fmt.Sprintf("-%d", gomaxprocs)
	}
	return name
}

// camel turns "stock.deduct" or "duplicate-submit" into StockDeduct and
// DuplicateSubmit.
func camel(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "Unnamed"
	}
	return b.String()
}

// benchPart keeps a name part free of what the benchmark format gives a
// meaning: spaces, slashes, and a trailing "-N" (read as GOMAXPROCS).
func benchPart(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '/' {
			return '_'
		}
		return r
	}, s)
	if i := strings.LastIndexByte(s, '-'); i >= 0 && i < len(s)-1 && strings.Trim(s[i+1:], "0123456789") == "" {
		s = s[:i] + "_" + s[i+1:]
	}
	return s
}

// sortedKeys returns m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
