package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// Suite sizes: the scenarios' own defaults, the smallest reliable run, or
// longer cells for nightly runs.
const (
	suiteQuick   = "quick"
	suiteDefault = "default"
	suiteLong    = "long"
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
	suiteQuick:   {quick: true, loadDuration: 300 * time.Millisecond},
	suiteDefault: {loadDuration: time.Second, loadWarmup: 200 * time.Millisecond, allLoadStrategies: true},
	suiteLong:    {scenarioDuration: 10 * time.Second, loadDuration: 10 * time.Second, loadWarmup: time.Second, allLoadStrategies: true},
}

// suiteFlags are `paybench suite`'s own flags.
type suiteFlags struct {
	quick, long  bool
	scenarios    string
	operations   string
	loadDuration time.Duration
	quiet        bool
}

// suitePlan is a validated suite command line.
type suitePlan struct {
	cf         commonFlags
	sf         suiteFlags
	mode       string
	profile    suiteProfile
	ks         impl.Keyspace
	scenarios  []string
	operations []string
	strategies []string // the --strategy filter; empty: all
}

const suiteSynopsis = `paybench suite [--quick|--long] [flags]

Runs every scenario × backend × strategy, then a short load of every
operation on every backend, and prints one matrix: a row per scenario or
operation and strategy, a column per backend, each cell with its verdict,
throughput and p99. --quick (under 2 minutes on 2 cores) keeps every
scenario at its reliable defaults and loads each operation's default
strategy for 300ms; the default size loads every strategy for 1s; --long
(nightly) runs every scenario cell and every load for 10s.`

func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p, err := parseSuite(args, stdout)
	if err != nil {
		return err
	}
	srv, err := p.cf.conn.provide(ctx, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()

	doc := newDocument("suite")
	doc.Mode = p.mode
	clients := map[string]map[string]string{}
	s := &suiteRun{p: p, srv: srv, doc: doc, clients: clients, stderr: stderr}
	s.total = s.countCells()
	runErr := s.runScenarios(ctx)
	if runErr == nil {
		runErr = s.runLoads(ctx)
	}
	doc.Finished = time.Now().UTC()
	doc.Interrupted = ctx.Err() != nil
	server := serverFacts(srv)
	doc.Fairness = bench.Fairness(server, clients)

	if err := reports.WriteMatrix(stdout, doc); err != nil {
		return err
	}
	if err := finish(ctx, srv, p.ks, p.cf.keep, stdout, stderr); err != nil && runErr == nil {
		runErr = err
	}
	gateErr := judgeGates(doc, &p.cf.outputFlags, stdout)
	if err := writeOutputs(doc, &p.cf.outputFlags); err != nil {
		return err
	}
	for _, f := range p.cf.outputs() {
		fmt.Fprintf(stdout, "%s report: %s\n", f[1], f[0])
	}
	if runErr != nil {
		return runErr
	}
	if doc.Interrupted {
		return withCode(exitInterrupted, errors.New("interrupted; partial results written"))
	}
	if gateErr != nil {
		return gateErr
	}
	return verdictError(doc)
}

// parseSuite parses and validates the command line; every problem is a
// usage error.
func parseSuite(args []string, stdout io.Writer) (*suitePlan, error) {
	p := &suitePlan{}
	fs := newFlagSet("suite")
	p.cf.bind(fs)
	fs.BoolVar(&p.sf.quick, "quick", false, "the quick suite: under 2 minutes on 2 cores")
	fs.BoolVar(&p.sf.long, "long", false, "the nightly suite: 10s per scenario cell and per load")
	fs.StringVar(&p.sf.scenarios, "scenario", "", "scenarios to run, comma-separated (default all; 'none' for loads only)")
	fs.StringVar(&p.sf.operations, "operation", "", "operations to load, comma-separated (default all; 'none' for scenarios only)")
	fs.DurationVar(&p.sf.loadDuration, "load-duration", 0, "length of each load cell (default: the suite size's)")
	fs.BoolVar(&p.sf.quiet, "quiet", false, "no line per finished cell on stderr")
	if f := fs.Lookup("duration"); f != nil {
		f.Usage = "stop each scenario cell after this long (default: the scenario's own, 10s with --long)"
	}
	if f := fs.Lookup("strategy"); f != nil {
		f.Usage = "only these strategies, comma-separated, in every scenario and operation that has them (default all)"
	}
	if err := parse(fs, args, stdout, suiteSynopsis+"\n\nGates (--gate):\n"+reports.GateGrammar); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if p.ks, err = p.cf.validate(); err != nil {
		return nil, err
	}
	switch {
	case p.sf.quick && p.sf.long:
		return nil, usageErrorf("--quick and --long exclude each other")
	case p.sf.quick:
		p.mode = suiteQuick
	case p.sf.long:
		p.mode = suiteLong
	default:
		p.mode = suiteDefault
	}
	if p.sf.loadDuration < 0 {
		return nil, usageErrorf("--load-duration must be >= 0, got %s", p.sf.loadDuration)
	}
	if p.cf.concurrency > maxLoadWorkers {
		return nil, usageErrorf("--concurrency must be <= %d, got %d", maxLoadWorkers, p.cf.concurrency)
	}
	p.profile = suiteProfiles[p.mode]
	if p.sf.loadDuration > 0 {
		p.profile.loadDuration = p.sf.loadDuration
	}
	if p.cf.duration == 0 {
		p.cf.duration = p.profile.scenarioDuration
	}
	p.cf.quick = p.profile.quick
	if p.scenarios, err = selectNames("--scenario", p.sf.scenarios, scenarios.Names()); err != nil {
		return nil, err
	}
	if p.operations, err = selectNames("--operation", p.sf.operations, scenarios.OperationNames()); err != nil {
		return nil, err
	}
	p.strategies = splitList(p.cf.strategies)
	if len(p.strategies) > 0 {
		known := map[string]bool{}
		for _, name := range p.scenarios {
			sc, _ := scenarios.New(name)
			for _, s := range scenarios.StrategyNames(sc) {
				known[s] = true
			}
		}
		for _, name := range p.operations {
			op, _ := scenarios.LookupOperation(name)
			for _, s := range op.Strategies {
				known[s] = true
			}
		}
		for _, s := range p.strategies {
			if !known[s] {
				return nil, usageErrorf("--strategy %q is a strategy of none of the selected scenarios and operations", s)
			}
		}
	}
	// Every scenario's own defaults must be valid (Validate also derives
	// parameters from their flags).
	for _, name := range p.scenarios {
		sc, err := scenarios.New(name)
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		if err := sc.Validate(); err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("%s: %w", name, err))
		}
	}
	return p, nil
}

// selectNames resolves a comma-separated selection against the known
// names: "" selects all, "none" none.
func selectNames(flag, list string, known []string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return known, nil
	}
	if strings.TrimSpace(list) == "none" {
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

// scenarioStrategies returns the strategies of sc the suite runs.
func (p *suitePlan) scenarioStrategies(sc scenarios.Scenario) []string {
	return p.filter(scenarios.StrategyNames(sc))
}

// operationStrategies returns the strategies of op the suite loads.
func (p *suitePlan) operationStrategies(op scenarios.Operation) []string {
	if len(p.strategies) == 0 && !p.profile.allLoadStrategies {
		return op.Strategies[:1]
	}
	return p.filter(op.Strategies)
}

func (p *suitePlan) filter(all []string) []string {
	if len(p.strategies) == 0 {
		return all
	}
	var out []string
	for _, s := range all {
		if contains(p.strategies, s) {
			out = append(out, s)
		}
	}
	return out
}

// suiteRun is one suite in progress.
type suiteRun struct {
	p       *suitePlan
	srv     *redisenv.Server
	doc     *result.Document
	clients map[string]map[string]string
	stderr  io.Writer
	done    int
	total   int
}

// countCells counts the cells the suite will run, for its progress lines.
func (s *suiteRun) countCells() int {
	n := 0
	backends := len(splitList(s.p.cf.backends))
	for _, name := range s.p.scenarios {
		sc, _ := scenarios.New(name)
		n += backends * len(s.p.scenarioStrategies(sc))
	}
	for _, name := range s.p.operations {
		op, _ := scenarios.LookupOperation(name)
		n += backends * len(s.p.operationStrategies(op))
	}
	return n
}

// progress prints a finished cell on one line of stderr.
func (s *suiteRun) progress(c *result.Cell, took time.Duration) {
	s.done++
	if s.p.sf.quiet {
		return
	}
	line := fmt.Sprintf("[%*d/%d] %s %s", len(fmt.Sprint(s.total)), s.done, s.total, c.Key(), c.Verdict)
	if c.Ops > 0 {
		line += fmt.Sprintf(" %s ops/s p99 %s", reports.FormatCount(c.ThroughputOps), reports.FormatMicros(c.Latency.Corrected.P99))
	}
	fmt.Fprintf(s.stderr, "%s (%s)\n", line, took.Round(10*time.Millisecond))
}

// open connects a backend and records its settings: under the backend's
// name for the scenarios, and under "NAME load" for the loads when they
// differ (the loads size the pool to their workers, as `paybench load`
// does).
func (s *suiteRun) open(ctx context.Context, name string, conn impl.ConnConfig, load bool) (impl.Backend, error) {
	be, err := backends.Open(ctx, name, conn)
	if err != nil {
		return nil, withCode(exitRedis, fmt.Errorf("%s: %w", name, err))
	}
	settings := be.Settings()
	key := name
	if load {
		if prev, ok := s.clients[name]; ok && maps.Equal(prev, settings) {
			return be, nil
		}
		key = name + " load"
	}
	if _, ok := s.clients[key]; !ok {
		s.clients[key] = settings
	}
	return be, nil
}

// runScenarios runs every selected scenario × backend × strategy, each
// cell as `paybench run` runs it. It stops at a Redis connection failure
// or an interrupt.
func (s *suiteRun) runScenarios(ctx context.Context) error {
	conn := scenarioConn(s.srv, &s.p.cf)
	for _, name := range s.p.scenarios {
		sc, _ := scenarios.New(name)
		if err := sc.Validate(); err != nil {
			return withCode(exitUsage, err)
		}
		strategies := s.p.scenarioStrategies(sc)
		if len(strategies) == 0 {
			continue
		}
		for _, bname := range splitList(s.p.cf.backends) {
			if ctx.Err() != nil {
				return nil
			}
			be, err := s.open(ctx, bname, conn, false)
			if err != nil {
				return err
			}
			for _, st := range strategies {
				if ctx.Err() != nil {
					break
				}
				start := time.Now()
				cell, err := runCell(ctx, sc, be, s.srv, s.p.ks, &s.p.cf, st, s.stderr)
				s.doc.Cells = append(s.doc.Cells, cell)
				s.progress(&s.doc.Cells[len(s.doc.Cells)-1], time.Since(start))
				if err != nil && ctx.Err() == nil && redisenv.IsConnectError(err) {
					be.Close()
					return withCode(exitRedis, err)
				}
			}
			be.Close()
		}
	}
	return nil
}

// runLoads loads every selected operation × backend × strategy briefly,
// each cell as `paybench load` drives it with its defaults.
func (s *suiteRun) runLoads(ctx context.Context) error {
	dist, err := bench.ParseKeyDist(bench.KeyUniform, 1)
	if err != nil {
		return err
	}
	for _, name := range s.p.operations {
		op, _ := scenarios.LookupOperation(name)
		strategies := s.p.operationStrategies(op)
		if len(strategies) == 0 {
			continue
		}
		lp := &loadPlan{
			op:         op,
			cf:         s.p.cf,
			lf:         loadFlags{warmup: s.p.profile.loadWarmup, pipeline: 1, keys: 1, keyDist: bench.KeyUniform, quiet: true},
			ks:         s.p.ks,
			strategies: strategies,
			dist:       dist,
			maxWorkers: s.p.cf.concurrency,
		}
		lp.cf.duration = s.p.profile.loadDuration
		conn := impl.ConnConfig{URL: s.srv.URL, Password: s.srv.Password, PoolSize: lp.maxWorkers}
		for _, bname := range splitList(s.p.cf.backends) {
			if ctx.Err() != nil {
				return nil
			}
			be, err := s.open(ctx, bname, conn, true)
			if err != nil {
				return err
			}
			for _, st := range strategies {
				if ctx.Err() != nil {
					break
				}
				start := time.Now()
				cell, err := loadCell(ctx, lp, be, s.srv, conn, st, s.stderr)
				s.doc.Cells = append(s.doc.Cells, cell)
				s.progress(&s.doc.Cells[len(s.doc.Cells)-1], time.Since(start))
				if err != nil && ctx.Err() == nil && redisenv.IsConnectError(err) {
					be.Close()
					return withCode(exitRedis, err)
				}
			}
			be.Close()
		}
	}
	return nil
}
