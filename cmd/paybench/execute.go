package main

import (
	"context"
	"fmt"
	"io"

	"github.com/paybench/paybench/bench/metrics"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/runner"
)

// execution is how a command shows a plan's run to the user.
type execution struct {
	conn connFlags
	// render writes the finished document on stdout (the text table, the
	// suite's matrix).
	render func(io.Writer, *result.Document) error
	// listOutputs prints the path of every file written.
	listOutputs bool
	// metricsAddr, when set, is where live metrics are served during the
	// run (--metrics-addr).
	metricsAddr string
}

// execute provides the server, runs the plan, renders the document and
// returns the run's error: a problem of the run itself first, then an
// interrupt, a failed gate, and last the verdicts.
func (x execution) execute(ctx context.Context, plan *runner.Plan, stdout, stderr io.Writer) error {
	if x.metricsAddr != "" {
		exp := metrics.New()
		ms, err := metrics.Listen(x.metricsAddr, exp)
		if err != nil {
			return usageErrorf("--metrics-addr: %w", err)
		}
		defer ms.Close()
		fmt.Fprintf(stderr, "metrics: %s\n", ms.URL())
		plan.Metrics = func(workload, backend, strategy string) runner.CellMetrics {
			return exp.Cell(workload, backend, strategy)
		}
	}
	srv, err := x.conn.provide(ctx, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()
	plan.Server = srv
	doc, err := runner.Run(ctx, plan)
	if doc == nil {
		return err
	}
	if len(doc.Cells) > 0 || err == nil {
		if rerr := x.render(stdout, doc); rerr != nil {
			return rerr
		}
		for _, g := range reports.FailedGates(doc.Gates) {
			fmt.Fprintln(stdout, "gate "+reports.DescribeGate(g))
		}
		if len(doc.Gates) > 0 && len(reports.FailedGates(doc.Gates)) == 0 {
			fmt.Fprintf(stdout, "gates: all %d checks held\n", len(doc.Gates))
		}
	}
	if plan.Keep && len(doc.Cells) > 0 {
		fmt.Fprintf(stdout, "keys kept under prefix %s\n", plan.Keys.Prefix())
		if srv.Kind != redisenv.KindURL {
			fmt.Fprintf(stderr, "note: this %s server stops with paybench, and its keys with it; use --redis-url to inspect kept keys\n", srv.Kind)
		}
	}
	if x.listOutputs {
		for _, o := range plan.Outputs {
			fmt.Fprintf(stdout, "%s report: %s\n", o.Format, o.Path)
		}
	}
	if err != nil {
		return err
	}
	return runner.VerdictError(doc)
}
