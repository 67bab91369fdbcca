package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/scenarios"
	"github.com/paybench/paybench/scenarios/runner"
)

// suiteProfile is what a suite size runs.
type suiteProfile struct {
	// scenarioDuration bounds each scenario cell (0: the scenario's
	// default).
	scenarioDuration time.Duration
	// quick is passed to scenarios as Common.Quick.
	quick bool
	// loadDuration and loadWarmup shape each load cell.
	loadDuration, loadWarmup time.Duration
	// allLoadStrategies loads every strategy of an operation, not only
	// its default one.
	allLoadStrategies bool
}

// suiteProfiles: quick keeps each scenario reliable (its defaults, or the
// smaller run it chooses for Common.Quick) and loads each operation's
// default strategy briefly; the default loads every strategy for a second;
// long runs every scenario cell for 10 s and every load for 10 s after a
// warm-up.
var suiteProfiles = map[string]suiteProfile{
	"quick":   {quick: true, loadDuration: 300 * time.Millisecond},
	"default": {loadDuration: time.Second, loadWarmup: 200 * time.Millisecond, allLoadStrategies: true},
	"long":    {scenarioDuration: 10 * time.Second, loadDuration: 10 * time.Second, loadWarmup: time.Second, allLoadStrategies: true},
}

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
	switch {
	case quick && long:
		return usageErrorf("--quick and --long exclude each other")
	case quick:
		plan.Mode = "quick"
	case long:
		plan.Mode = "long"
	default:
		plan.Mode = "default"
	}
	if loadDuration < 0 {
		return usageErrorf("--load-duration must be >= 0, got %s", loadDuration)
	}
	profile := suiteProfiles[plan.Mode]
	if loadDuration > 0 {
		profile.loadDuration = loadDuration
	}
	if plan.Settings.Duration == 0 {
		plan.Settings.Duration = profile.scenarioDuration
	}
	plan.Settings.Quick = profile.quick
	if err := selectCells(plan, profile, scenarioList, operationList, splitList(cf.strategies)); err != nil {
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
	return execution{conn: cf.conn, render: reports.WriteMatrix, listOutputs: true}.execute(ctx, plan, stdout, stderr)
}

// selectCells fills the plan's scenarios and loads from the selections:
// "" selects all, "none" none; --strategy keeps only the strategies named,
// each of which must belong to a selected scenario or operation.
func selectCells(plan *runner.Plan, profile suiteProfile, scenarioList, operationList string, only []string) error {
	scNames, err := selectNames("--scenario", scenarioList, scenarios.Names())
	if err != nil {
		return err
	}
	opNames, err := selectNames("--operation", operationList, scenarios.OperationNames())
	if err != nil {
		return err
	}
	known := map[string]bool{}
	keep := func(all []string) []string {
		var out []string
		for _, s := range all {
			known[s] = true
			if len(only) == 0 || contains(only, s) {
				out = append(out, s)
			}
		}
		return out
	}
	for _, name := range scNames {
		sc, err := scenarios.New(name)
		if err != nil {
			return withCode(exitUsage, err)
		}
		if err := sc.Validate(); err != nil {
			return usageErrorf("%s: %w", name, err)
		}
		if st := keep(scenarios.StrategyNames(sc)); len(st) > 0 {
			plan.Scenarios = append(plan.Scenarios, runner.ScenarioCells{Scenario: sc, Strategies: st})
		}
	}
	oneKey, _ := bench.ParseKeyDist(bench.KeyUniform, 1)
	for _, name := range opNames {
		op, _ := scenarios.LookupOperation(name)
		all := op.Strategies
		if len(only) == 0 && !profile.allLoadStrategies {
			all = all[:1]
		}
		keep(op.Strategies[len(all):]) // known, but not loaded at this size
		if st := keep(all); len(st) > 0 {
			plan.Loads = append(plan.Loads, runner.LoadCells{Operation: op, Strategies: st, Shape: runner.LoadShape{
				Duration: profile.loadDuration, Warmup: profile.loadWarmup, Pipeline: 1, Keys: oneKey,
			}})
		}
	}
	for _, s := range only {
		if !known[s] {
			return usageErrorf("--strategy %q is a strategy of none of the selected scenarios and operations", s)
		}
	}
	return nil
}

// selectNames resolves a comma-separated selection against the known
// names: "" selects all, "none" none.
func selectNames(flag, list string, known []string) ([]string, error) {
	switch strings.TrimSpace(list) {
	case "":
		return known, nil
	case "none":
		return nil, nil
	}
	names := splitList(list)
	for _, n := range names {
		if !contains(known, n) {
			return nil, usageErrorf("%s: unknown name %q (known: %s)", flag, n, strings.Join(known, ", "))
		}
	}
	return names, nil
}
