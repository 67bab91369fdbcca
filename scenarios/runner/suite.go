package runner

import (
	"slices"
	"strings"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/scenarios"
)

// Suite sizes.
const (
	// SuiteQuick keeps every scenario at its reliable defaults (or the
	// smaller run it chooses for Quick) and loads each operation's default
	// strategy for 300 ms: under 2 minutes on 2 cores.
	SuiteQuick = "quick"
	// SuiteDefault adds every load strategy, each for 1 s after a 200 ms
	// warm-up.
	SuiteDefault = "default"
	// SuiteLong runs every scenario cell for 10 s and every load for 10 s
	// after a 1 s warm-up (nightly).
	SuiteLong = "long"
)

// suiteProfile is what a suite size runs.
type suiteProfile struct {
	scenarioDuration         time.Duration
	quick                    bool
	loadDuration, loadWarmup time.Duration
	allLoadStrategies        bool
}

var suiteProfiles = map[string]suiteProfile{
	SuiteQuick:   {quick: true, loadDuration: 300 * time.Millisecond},
	SuiteDefault: {loadDuration: time.Second, loadWarmup: 200 * time.Millisecond, allLoadStrategies: true},
	SuiteLong:    {scenarioDuration: 10 * time.Second, loadDuration: 10 * time.Second, loadWarmup: time.Second, allLoadStrategies: true},
}

// Selection says which cells of a suite to run. Scenarios and Operations
// are comma-separated names: "" selects all, "none" none.
type Selection struct {
	Scenarios  string
	Operations string
	// Strategies keeps only these strategies (empty: all); each must be a
	// strategy of a selected scenario or operation.
	Strategies []string
	// LoadDuration overrides the size's load cell length (0: the size's).
	LoadDuration time.Duration
}

// AddSuite fills the plan with a suite of the given size: every selected
// scenario's strategies, then every selected operation's load. A bad
// selection is a usage error.
func (p *Plan) AddSuite(size string, sel Selection) error {
	prof, ok := suiteProfiles[size]
	if !ok {
		return errext.Errorf(errext.Usage, "unknown suite size %q", size)
	}
	if sel.LoadDuration < 0 {
		return errext.Errorf(errext.Usage, "--load-duration must be >= 0, got %s", sel.LoadDuration)
	}
	if sel.LoadDuration > 0 {
		prof.loadDuration = sel.LoadDuration
	}
	p.Mode = size
	if p.Settings.Duration == 0 {
		p.Settings.Duration = prof.scenarioDuration
	}
	p.Settings.Quick = prof.quick
	scNames, err := selectNames("--scenario", sel.Scenarios, scenarios.Names())
	if err != nil {
		return err
	}
	opNames, err := selectNames("--operation", sel.Operations, scenarios.OperationNames())
	if err != nil {
		return err
	}
	known := map[string]bool{}
	keep := func(all []string) []string {
		var out []string
		for _, s := range all {
			known[s] = true
			if len(sel.Strategies) == 0 || slices.Contains(sel.Strategies, s) {
				out = append(out, s)
			}
		}
		return out
	}
	for _, name := range scNames {
		sc, err := scenarios.New(name)
		if err != nil {
			return errext.WithExitCodeIfNone(err, errext.Usage)
		}
		if err := sc.Validate(); err != nil {
			return errext.Errorf(errext.Usage, "%s: %w", name, err)
		}
		if st := keep(scenarios.StrategyNames(sc)); len(st) > 0 {
			p.Scenarios = append(p.Scenarios, ScenarioCells{Scenario: sc, Strategies: st})
		}
	}
	oneKey, _ := bench.ParseKeyDist(bench.KeyUniform, 1)
	for _, name := range opNames {
		op, _ := scenarios.LookupOperation(name)
		loaded := op.Strategies
		if len(sel.Strategies) == 0 && !prof.allLoadStrategies {
			loaded = loaded[:1]
		}
		keep(op.Strategies[len(loaded):]) // known, not loaded at this size
		if st := keep(loaded); len(st) > 0 {
			p.Loads = append(p.Loads, LoadCells{Operation: op, Strategies: st, Shape: LoadShape{
				Duration: prof.loadDuration, Warmup: prof.loadWarmup, Pipeline: 1, Keys: oneKey,
			}})
		}
	}
	for _, s := range sel.Strategies {
		if !known[s] {
			return errext.Errorf(errext.Usage, "--strategy %q is a strategy of none of the selected scenarios and operations", s)
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
	var names []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !slices.Contains(known, n) {
			return nil, errext.Errorf(errext.Usage, "%s: unknown name %q (known: %s)", flag, n, strings.Join(known, ", "))
		}
		names = append(names, n)
	}
	return names, nil
}

// Check validates a load shape against the plan's concurrency: every
// problem is a usage error.
func (s LoadShape) Check(concurrency, maxWorkers int) error {
	switch {
	case s.Requests < 0:
		return errext.Errorf(errext.Usage, "--requests must be >= 0, got %d", s.Requests)
	case s.Duration < 0:
		return errext.Errorf(errext.Usage, "--duration must be >= 0, got %s", s.Duration)
	case s.Duration == 0 && s.Requests == 0:
		return errext.New(errext.Usage, "a load needs --duration > 0 or --requests > 0")
	case s.Warmup < 0:
		return errext.Errorf(errext.Usage, "--warmup must be >= 0, got %s", s.Warmup)
	case s.Pipeline < 1 || s.Pipeline > MaxPipeline:
		return errext.Errorf(errext.Usage, "--pipeline must be 1..%d, got %d", MaxPipeline, s.Pipeline)
	case s.MaxWorkers < 0 || s.MaxWorkers > maxWorkers:
		return errext.Errorf(errext.Usage, "--max-workers must be 0..%d, got %d", maxWorkers, s.MaxWorkers)
	case s.MaxWorkers > 0 && s.Pacer == nil && s.FindMax == nil:
		return errext.New(errext.Usage, "--max-workers needs --rate (a closed loop runs exactly --concurrency workers)")
	case s.MaxWorkers > 0 && s.MaxWorkers < concurrency:
		return errext.Errorf(errext.Usage, "--max-workers %d is below --concurrency %d", s.MaxWorkers, concurrency)
	}
	return nil
}

// MaxPipeline bounds LoadShape.Pipeline.
const MaxPipeline = 10_000
