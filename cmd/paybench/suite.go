package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/scenarios/runner"
)

const suiteSynopsis = `paybench suite [--quick|--long] [flags]

Runs every scenario × backend × strategy, then a short load of every
operation on every backend, and prints one matrix: a row per scenario or
operation and strategy, a column per backend, each cell with its verdict,
throughput and p99. --quick (under 2 minutes on 2 cores) keeps every
scenario at its reliable defaults and loads each operation's default
strategy for 300ms; the default size loads every strategy for 1s; --long
(nightly) runs every scenario cell and every load for 10s.`

// cmdSuite is `paybench suite`: every scenario, then every operation's
// load, on every backend; one matrix.
func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	var quick, long, quiet bool
	var scenarioList, operationList string
	var loadDuration time.Duration
	fs := newFlagSet("suite")
	cf.bind(fs)
	fs.BoolVar(&quick, "quick", false, "the quick suite: under 2 minutes on 2 cores")
	fs.BoolVar(&long, "long", false, "the nightly suite: 10s per scenario cell and per load")
	fs.StringVar(&scenarioList, "scenario", "", "scenarios to run, comma-separated (default all; 'none' for loads only)")
	fs.StringVar(&operationList, "operation", "", "operations to load, comma-separated (default all; 'none' for scenarios only)")
	fs.DurationVar(&loadDuration, "load-duration", 0, "length of each load cell (default: the suite size's)")
	fs.BoolVar(&quiet, "quiet", false, "no line per finished cell on stderr")
	fs.Lookup("duration").Usage = "stop each scenario cell after this long (default: the scenario's own, 10s with --long)"
	fs.Lookup("strategy").Usage = "only these strategies, comma-separated, in every scenario and operation that has them (default all)"
	if err := parseFlags(fs, args, stdout, suiteSynopsis+"\n\nGates (--gate):\n"+reports.GateGrammar); err != nil {
		return err
	}
	plan, err := cf.plan("suite")
	if err != nil {
		return err
	}
	size := runner.SuiteDefault
	switch {
	case quick && long:
		return usageErrorf("--quick and --long exclude each other")
	case quick:
		size = runner.SuiteQuick
	case long:
		size = runner.SuiteLong
	}
	sel := runner.Selection{Scenarios: scenarioList, Operations: operationList, Strategies: splitList(cf.strategies), LoadDuration: loadDuration}
	if err := plan.AddSuite(size, sel); err != nil {
		return err
	}
	if !quiet {
		plan.OnEvent = func(e runner.Event) {
			if e.Type != runner.CellDone {
				return
			}
			c := e.Cell
			line := fmt.Sprintf("[%*d/%d] %s %s", len(fmt.Sprint(e.Total)), e.Index, e.Total, c.Key(), c.Verdict)
			if c.Ops > 0 {
				line += fmt.Sprintf(" %s ops/s p99 %s", reports.FormatCount(c.ThroughputOps), reports.FormatMicros(c.Latency.Corrected.P99))
			}
			fmt.Fprintf(stderr, "%s (%s)\n", line, e.Took.Round(10*time.Millisecond))
		}
	}
	return execution{conn: cf.conn, metricsAddr: cf.metricsAddr, render: reports.WriteMatrix, listOutputs: true}.execute(ctx, plan, stdout, stderr)
}
