package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
)

// outputFlags are the result files every command that drives load writes
// (run, load, suite), and its absolute gates.
type outputFlags struct {
	jsonPath     string
	htmlPath     string
	junitPath    string
	markdownPath string
	benchfmtPath string
	gateExprs    []string

	gates []reports.Gate // parsed by validate
}

func (o *outputFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&o.jsonPath, "json", "", "write the result as JSON (the versioned document, with histograms) to this file")
	fs.StringVar(&o.htmlPath, "html", "", "write a self-contained HTML report with plots to this file")
	fs.StringVar(&o.junitPath, "junit", "", "write JUnit XML (a test case per invariant) to this file")
	fs.StringVar(&o.markdownPath, "markdown", "", "write a Markdown summary (for a pull-request comment) to this file")
	fs.StringVar(&o.benchfmtPath, "benchfmt", "", "write Go benchmark text (benchstat reads it) to this file")
	fs.StringArrayVar(&o.gateExprs, "gate", nil, "fail (exit 1) unless every cell passes these gates, e.g. 'p99<5ms,throughput>20000' (repeatable; see README)")
}

// validate parses the gates: a bad expression is a usage error.
func (o *outputFlags) validate() error {
	o.gates = nil
	for _, expr := range o.gateExprs {
		gs, err := reports.ParseGates(expr)
		if err != nil {
			return usageErrorf("--gate: %w", err)
		}
		o.gates = append(o.gates, gs...)
	}
	return nil
}

// outputs lists the files asked for, with their format.
func (o *outputFlags) outputs() [][2]string {
	var out [][2]string
	for _, f := range [][2]string{
		{o.jsonPath, reports.FormatJSON},
		{o.htmlPath, reports.FormatHTML},
		{o.junitPath, reports.FormatJUnit},
		{o.markdownPath, reports.FormatMarkdown},
		{o.benchfmtPath, reports.FormatBenchFmt},
	} {
		if f[0] != "" {
			out = append(out, f)
		}
	}
	return out
}

// judgeGates judges the gates on doc's cells, records the outcomes in the
// document (so every output shows them), prints each failure on w, and
// returns an exit-1 error when any failed.
func judgeGates(doc *result.Document, o *outputFlags, w io.Writer) error {
	if len(o.gates) == 0 {
		return nil
	}
	doc.Gates = reports.JudgeGates(doc, o.gates)
	failed := reports.FailedGates(doc.Gates)
	for _, g := range failed {
		fmt.Fprintln(w, "gate "+reports.DescribeGate(g))
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "gates: all %d checks held\n", len(doc.Gates))
		return nil
	}
	return withCode(exitFail, fmt.Errorf("%d of %d gate checks failed", len(failed), len(doc.Gates)))
}

// writeOutputs writes every result file asked for (--json, --html,
// --junit, --markdown, --benchfmt), each atomically. It writes them all
// even when one fails, and returns the errors joined.
func writeOutputs(doc *result.Document, o *outputFlags) error {
	var errs []error
	for _, f := range o.outputs() {
		if err := reports.WriteFile(f[0], doc, f[1]); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", f[1], err))
		}
	}
	return errors.Join(errs...)
}

// hostname names this load generator in the result ("" when unknown).
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// newDocument starts the result document of a run, load or suite: schema,
// tool, the command line with passwords redacted, start time and host.
func newDocument(kind string) *result.Document {
	return &result.Document{
		Schema:  result.SchemaVersion,
		Kind:    kind,
		Tool:    result.Tool{Version: version, Commit: bench.Commit()},
		Command: redactArgs(os.Args),
		Started: time.Now().UTC(),
		Host:    hostname(),
	}
}

// serverFacts describes srv for the fairness block, its password redacted.
func serverFacts(srv *redisenv.Server) result.Server {
	return result.Server{Kind: string(srv.Kind), Version: srv.Version, Address: srv.Redacted(), Mode: srv.Mode}
}
