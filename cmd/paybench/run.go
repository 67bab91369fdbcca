package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/scenarios"
	"github.com/paybench/paybench/scenarios/runner"
)

// cmdRun is `paybench run SCENARIO`: every backend × strategy cell of one
// scenario.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The scenario's name comes first so that its own flags can be bound.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(stdout, "Usage: paybench run SCENARIO [flags]\n\nScenarios: %s\n(paybench run SCENARIO -h for its flags)\n", strings.Join(scenarios.Names(), ", "))
			return nil
		}
		return usageErrorf("run needs a scenario (one of: %s)", strings.Join(scenarios.Names(), ", "))
	}
	sc, err := scenarios.New(args[0])
	if err != nil {
		return withCode(exitUsage, err)
	}
	var cf commonFlags
	fs := newFlagSet("run")
	cf.bind(fs)
	sc.Flags(fs)
	if err := parseFlags(fs, args[1:], stdout, "paybench run "+sc.Name()+" [flags]\n\n"+sc.Description()); err != nil {
		return err
	}
	plan, err := cf.plan("run")
	if err != nil {
		return err
	}
	if err := sc.Validate(); err != nil {
		return withCode(exitUsage, err)
	}
	strategies := splitList(cf.strategies)
	if len(strategies) == 0 {
		strategies = scenarios.StrategyNames(sc)
	}
	for _, s := range strategies {
		if _, ok := scenarios.FindStrategy(sc, s); !ok {
			return usageErrorf("unknown strategy %q for %s (known: %s)", s, sc.Name(), strings.Join(scenarios.StrategyNames(sc), ", "))
		}
	}
	plan.Scenarios = []runner.ScenarioCells{{Scenario: sc, Strategies: strategies}}
	return execution{conn: cf.conn, metricsAddr: cf.metricsAddr, render: reports.Text}.execute(ctx, plan, stdout, stderr)
}
