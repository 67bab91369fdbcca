package reports

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/paybench/paybench/reports/result"
)

// Markdown writes the result for a pull-request comment: a headline with
// the tally, the run's facts and warnings, the summary matrix, the cells
// whose verdict is not what they expected with their broken invariants,
// the faults applied to each cell, the gates, and every cell's figures in
// a collapsed table.
func Markdown(w io.Writer, doc *result.Document) error {
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "### paybench %s — %s\n\n", doc.Kind, Tally(doc))
	fmt.Fprintln(bw, mdEscape(strings.Join(runFacts(doc), " · ")))
	fmt.Fprintln(bw)
	if doc.Interrupted {
		fmt.Fprint(bw, "> **Interrupted**: the run was stopped early; figures are partial.\n\n")
	}
	for _, warning := range doc.Warnings {
		fmt.Fprintf(bw, "> ⚠️ %s\n\n", mdEscape(warning))
	}

	m := BuildMatrix(doc)
	fmt.Fprint(bw, "| scenario / operation | strategy |")
	for _, b := range m.Backends {
		fmt.Fprintf(bw, " %s |", mdEscape(b))
	}
	fmt.Fprint(bw, "\n|---|---|")
	for range m.Backends {
		fmt.Fprint(bw, "---|")
	}
	fmt.Fprintln(bw)
	for _, r := range m.Rows {
		fmt.Fprintf(bw, "| %s | %s |", mdEscape(r.Name), mdEscape(r.Strategy))
		for _, b := range m.Backends {
			c := r.Cells[b]
			if c == nil {
				fmt.Fprint(bw, " – |")
				continue
			}
			fmt.Fprintf(bw, " %s %s |", verdictMark(c.Verdict), mdEscape(MatrixCell(c)))
		}
		fmt.Fprintln(bw)
	}

	var bad []*result.Cell
	for i := range doc.Cells {
		if !doc.Cells[i].Verdict.AsExpected() {
			bad = append(bad, &doc.Cells[i])
		}
	}
	if len(bad) > 0 {
		fmt.Fprint(bw, "\n**Not as expected**\n\n")
		for _, c := range bad {
			fmt.Fprintf(bw, "- %s **%s** %s", verdictMark(c.Verdict), mdEscape(c.Key()), c.Verdict)
			if c.Summary != "" {
				fmt.Fprintf(bw, ": %s", mdEscape(c.Summary))
			}
			fmt.Fprintln(bw)
			if c.Error != "" {
				fmt.Fprintf(bw, "  - error: %s\n", mdEscape(c.Error))
			}
			if c.Reason != "" {
				fmt.Fprintf(bw, "  - reason: %s\n", mdEscape(c.Reason))
			}
			for _, inv := range c.Invariants {
				if !inv.Holds {
					fmt.Fprintf(bw, "  - ✗ %s: %s\n", mdEscape(inv.Name), mdEscape(inv.Detail))
				}
			}
		}
	}

	var faulted []*result.Cell
	for i := range doc.Cells {
		if len(doc.Cells[i].Faults) > 0 {
			faulted = append(faulted, &doc.Cells[i])
		}
	}
	if len(faulted) > 0 {
		fmt.Fprint(bw, "\n**Faults** (times from each cell's start)\n\n")
		for _, c := range faulted {
			fmt.Fprintf(bw, "- %s\n", mdEscape(c.Key()))
			for _, f := range c.Faults {
				fmt.Fprintf(bw, "  - %s\n", mdEscape(FaultLine(f)))
			}
		}
	}

	if len(doc.Gates) > 0 {
		failed := FailedGates(doc.Gates)
		fmt.Fprintf(bw, "\n**Gates**: %d of %d checks held\n", len(doc.Gates)-len(failed), len(doc.Gates))
		if len(failed) > 0 {
			fmt.Fprintln(bw)
			for _, g := range failed {
				fmt.Fprintf(bw, "- ❌ %s\n", mdEscape(DescribeGate(g)))
			}
		}
	}

	fmt.Fprint(bw, "\n<details><summary>All cells</summary>\n\n")
	fmt.Fprintln(bw, "| cell | verdict | ops | ops/s | p50 | p99 | p99.9 | max | errors | summary |")
	fmt.Fprintln(bw, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
	for i := range doc.Cells {
		c := &doc.Cells[i]
		l := c.Latency.Corrected
		fmt.Fprintf(bw, "| %s | %s | %d | %.0f | %s | %s | %s | %s | %d | %s |\n",
			mdEscape(c.Key()), c.Verdict, c.Ops, c.ThroughputOps,
			FormatMicros(l.P50), FormatMicros(l.P99), FormatMicros(l.P999), FormatMicros(l.Max),
			ErrorCount(c), mdEscape(c.Summary))
	}
	fmt.Fprint(bw, "\n</details>\n")
	return bw.err
}

// runFacts lists the document's facts for a header line: commit, time,
// length, server, process and libraries.
func runFacts(doc *result.Document) []string {
	var facts []string
	commit := doc.Tool.Commit
	if commit == "" {
		commit = "unknown"
	}
	facts = append(facts, fmt.Sprintf("paybench %s (commit %s)", doc.Tool.Version, commit))
	if doc.Mode != "" {
		facts = append(facts, "mode "+doc.Mode)
	}
	if !doc.Started.IsZero() {
		facts = append(facts, doc.Started.UTC().Format("2006-01-02 15:04:05 UTC"))
		if doc.Finished.After(doc.Started) {
			facts = append(facts, doc.Finished.Sub(doc.Started).Round(100*time.Millisecond).String())
		}
	}
	if doc.Host != "" {
		facts = append(facts, "host "+doc.Host)
	}
	if len(doc.Sources) > 0 {
		facts = append(facts, fmt.Sprintf("merged from %d results", len(doc.Sources)))
	}
	f := doc.Fairness
	facts = append(facts, fmt.Sprintf("server %s redis %s", f.Server.Kind, f.Server.Version))
	facts = append(facts, fmt.Sprintf("GOMAXPROCS %d of %d CPUs", f.GOMAXPROCS, f.NumCPU))
	facts = append(facts, f.GoVersion+" "+f.OS+"/"+f.Arch)
	mods := make([]string, 0, len(f.Libraries))
	for m, v := range f.Libraries {
		mods = append(mods, shortModule(m)+" "+v)
	}
	sort.Strings(mods)
	return append(facts, mods...)
}

// shortModule shortens a module path to its last meaningful element:
// github.com/redis/go-redis/v9 → go-redis.
func shortModule(m string) string {
	parts := strings.Split(m, "/")
	last := parts[len(parts)-1]
	if len(parts) > 1 && len(last) >= 2 && last[0] == 'v' && last[1] >= '0' && last[1] <= '9' {
		last = parts[len(parts)-2]
	}
	return last
}

// verdictMark is a symbol for a verdict: as expected, not, or neither
// (unsupported; inconclusive: the cell could not be judged).
func verdictMark(v result.Verdict) string {
	switch {
	case v == result.Unsupported:
		return "➖"
	case v == result.Inconclusive:
		return "⚠️"
	case v.AsExpected():
		return "✅"
	default:
		return "❌"
	}
}

// mdEscape keeps text from breaking a Markdown table or turning into
// markup.
func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "\\`")
	return r.Replace(s)
}

// errWriter remembers the first write error, so renderers can write
// freely and check once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, nil
}
