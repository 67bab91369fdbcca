package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/scenarios"
	"github.com/paybench/paybench/scenarios/runner"
)

// Defaults and bounds of `paybench load`.
const (
	// defaultLoadDuration is the measured window when neither --duration
	// nor --requests is given.
	defaultLoadDuration = 10 * time.Second
)

// loadFlags are `paybench load`'s own flags, besides the common ones.
type loadFlags struct {
	requests   int64
	warmup     time.Duration
	rate       string
	maxWorkers int
	pipeline   int
	keys       int
	keyDist    string
	quiet      bool

	stages     string
	findMax    bool
	stepDur    time.Duration
	findBudget time.Duration
	findStart  float64
	findLimit  float64
	shard      string
	startAt    string
}

// Environment variables that give --shard its default: a Kubernetes
// Indexed Job sets the first in every pod; the manifests set the second.
const (
	envShardIndex = "JOB_COMPLETION_INDEX"
	envShardCount = "PAYBENCH_SHARDS"
)

// maxStartAhead bounds how far in the future --start-at may be.
const maxStartAhead = 24 * time.Hour

func (l *loadFlags) bind(fs *pflag.FlagSet) {
	fs.Int64Var(&l.requests, "requests", 0, "stop each cell after this many measured operations (default: run for --duration, 10s when neither is set)")
	fs.DurationVar(&l.warmup, "warmup", 0, "run the load this long before measuring (not recorded)")
	fs.StringVar(&l.rate, "rate", "", "open loop at this many operations per second, or a linear ramp FROM:TO over --duration (default: closed loop, as fast as the workers go)")
	fs.IntVar(&l.maxWorkers, "max-workers", 0, fmt.Sprintf("open loop: add workers up to this many when every worker is busy and operations fall due (default: a ceiling of %d, fewer when memory is short; the engine adds none while the rate does not rise with them)", runner.DefaultMaxWorkers))
	fs.IntVar(&l.pipeline, "pipeline", 1, "operations per round trip: a go-redis pipeline or a rueidis DoMulti of N (1: one command per call; rueidis still auto-pipelines concurrent calls)")
	fs.IntVar(&l.keys, "keys", 1, "number of distinct keys (items, locks, users) the load spreads over (1: one hot key)")
	fs.StringVar(&l.keyDist, "key-dist", bench.KeyUniform, "how operations pick their key: uniform, zipf[:S] (default S 0.99) or hot[:F] (share F of operations on key 0, default 0.9)")
	fs.BoolVar(&l.quiet, "quiet", false, "no live progress line on stderr")
	fs.StringVar(&l.stages, "stages", "", "open loop in stages DURATION:RATE,... each a linear ramp from the previous rate (0 at first; 0s:RATE jumps), e.g. 10s:1000,30s:5000,10s:0; the run lasts their sum")
	fs.BoolVar(&l.findMax, "find-max", false, "search the highest open-loop rate at which every --gate holds (corrected latency): doubling, then bisection")
	fs.DurationVar(&l.stepDur, "step-duration", runner.DefaultFindMaxStep, "--find-max: the measured length of each step (after a sixth of it as warm-up)")
	fs.DurationVar(&l.findBudget, "find-max-budget", runner.DefaultFindMaxBudget, "--find-max: the most time the search may take; it reports the best rate found by then")
	fs.Float64Var(&l.findStart, "find-max-start", runner.DefaultFindMaxStart, "--find-max: the first rate tried, in operations per second")
	fs.Float64Var(&l.findLimit, "find-max-limit", runner.DefaultFindMaxLimit, "--find-max: the highest rate tried")
	fs.StringVar(&l.shard, "shard", "", "I/N: this generator's part of N — every N-th operation of the rate or stages' schedule, of --requests, and of the keys (default $"+envShardIndex+"/$"+envShardCount+" when both are set)")
	fs.StringVar(&l.startAt, "start-at", "", "RFC3339 time at which the first cell's clock starts (after its setup), the same on every generator, e.g. 2026-01-02T10:00:00Z")
}

// cmdLoad is `paybench load OPERATION`: one operation driven flat out or
// at a rate, on every backend × strategy asked for.
func cmdLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The operation's name comes first, as a scenario's does for run.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(stdout, "Usage: paybench load OPERATION [flags]\n\nOperations: %s\n(paybench load OPERATION -h for its flags; paybench list describes them)\n", strings.Join(scenarios.OperationNames(), ", "))
			return nil
		}
		return usageErrorf("load needs an operation (one of: %s)", strings.Join(scenarios.OperationNames(), ", "))
	}
	op, err := scenarios.LookupOperation(args[0])
	if err != nil {
		return withCode(exitUsage, err)
	}
	var cf commonFlags
	var lf loadFlags
	fs := newFlagSet("load")
	cf.bind(fs)
	lf.bind(fs)
	fs.Lookup("strategy").Usage = fmt.Sprintf("strategies, comma-separated (default %s; known: %s)", op.Strategies[0], strings.Join(op.Strategies, ", "))
	if err := parseFlags(fs, args[1:], stdout, "paybench load "+op.Name+" [flags]\n\n"+op.Description); err != nil {
		return err
	}
	plan, err := cf.plan("load")
	if err != nil {
		return err
	}
	cells := runner.LoadCells{Operation: op, Strategies: splitList(cf.strategies)}
	if cells.Shape, err = lf.shape(&cf, fs.Changed("duration")); err != nil {
		return err
	}
	if lf.findMax {
		if len(plan.Gates) == 0 {
			return usageErrorf("--find-max needs at least one --gate to meet, such as --gate 'p99<2ms'")
		}
		cells.Shape.FindMax.Gates = plan.Gates
	}
	if len(cells.Strategies) == 0 {
		cells.Strategies = op.Strategies[:1]
	}
	for _, s := range cells.Strategies {
		if !contains(op.Strategies, s) {
			return usageErrorf("unknown strategy %q for %s (known: %s)", s, op.Name, strings.Join(op.Strategies, ", "))
		}
	}
	plan.Loads = []runner.LoadCells{cells}
	if f, ok := stderr.(*os.File); ok && !lf.quiet && term.IsTerminal(int(f.Fd())) {
		var line *bench.ProgressLine
		plan.OnEvent = func(e runner.Event) {
			switch e.Type {
			case runner.CellStarted:
				line = bench.NewProgressLine(stderr, e.Message)
			case runner.CellProgress:
				line.Update(e.Progress)
			case runner.CellDone:
				line.Done()
			}
		}
	}
	return execution{conn: cf.conn, metricsAddr: cf.metricsAddr, render: reports.Text}.execute(ctx, plan, stdout, stderr)
}

// shape turns the load flags into the cells' shape.
func (l *loadFlags) shape(cf *commonFlags, durationSet bool) (runner.LoadShape, error) {
	s := runner.LoadShape{Requests: l.requests, Duration: cf.duration, Warmup: l.warmup, Pipeline: l.pipeline, MaxWorkers: l.maxWorkers}
	if cf.waitReplicas > 0 && l.pipeline > 1 {
		// A batch's deductions share round trips; no WAIT follows them.
		return s, usageErrorf("--wait-replicas works with one operation per call: drop --pipeline %d", l.pipeline)
	}
	if s.Duration == 0 && s.Requests == 0 && !durationSet {
		s.Duration = defaultLoadDuration
	}
	var err error
	if s.Keys, err = bench.ParseKeyDist(l.keyDist, l.keys); err != nil {
		return s, usageErrorf("--key-dist/--keys: %w", err)
	}
	if l.rate != "" {
		if s.Pacer, err = bench.ParseRate(l.rate, l.warmup, s.Duration); err != nil {
			return s, usageErrorf("--rate: %w", err)
		}
	}
	if err := l.stagesShape(&s, durationSet); err != nil {
		return s, err
	}
	if err := l.findMaxShape(&s, durationSet); err != nil {
		return s, err
	}
	if s.Shard, err = l.shardFlag(); err != nil {
		return s, err
	}
	if s.FindMax != nil && s.Shard.Split() {
		return s, usageErrorf("--find-max searches one generator's rate; it does not take --shard %s", s.Shard)
	}
	if l.startAt != "" {
		if s.StartAt, err = time.Parse(time.RFC3339, l.startAt); err != nil {
			return s, usageErrorf("--start-at %q: want an RFC3339 time such as 2026-01-02T10:00:00Z", l.startAt)
		}
		if time.Until(s.StartAt) > maxStartAhead {
			return s, usageErrorf("--start-at %s is more than %s ahead", l.startAt, maxStartAhead)
		}
	}
	return s, s.Check(cf.concurrency, maxWorkers)
}

// stagesShape applies --stages: the stages' schedule, and their length as
// the measured window.
func (l *loadFlags) stagesShape(s *runner.LoadShape, durationSet bool) error {
	if l.stages == "" {
		return nil
	}
	switch {
	case l.rate != "":
		return usageErrorf("--stages and --rate are two schedules: give one")
	case durationSet:
		return usageErrorf("--stages sets the run's length (the sum of its stages): drop --duration")
	case l.requests > 0:
		return usageErrorf("--stages runs for the sum of its stages: drop --requests")
	}
	p, err := bench.ParseStages(l.stages)
	if err != nil {
		return usageErrorf("--stages: %w", err)
	}
	// The warm-up holds the rate the first stage with a length starts
	// from: 0, unless stages of no length (0s:RATE) set it.
	for _, st := range p.Stages {
		if st.Duration > 0 {
			break
		}
		p.Start = st.Target
	}
	if l.warmup > 0 && p.Start == 0 {
		return usageErrorf("--warmup with --stages holds the rate the stages start from, 0 here: begin them with 0s:RATE, such as 0s:1000,%s", l.stages)
	}
	p.Delay = l.warmup
	s.Pacer, s.Duration, s.Requests = p, p.Total(), 0
	return nil
}

// findMaxShape applies --find-max and its flags.
func (l *loadFlags) findMaxShape(s *runner.LoadShape, durationSet bool) error {
	if !l.findMax {
		return nil
	}
	switch {
	case l.rate != "" || l.stages != "":
		return usageErrorf("--find-max chooses the rates itself: drop --rate and --stages")
	case durationSet || l.requests > 0:
		return usageErrorf("--find-max runs steps of --step-duration: drop --duration and --requests")
	case l.stepDur <= 0 || l.stepDur > time.Hour:
		return usageErrorf("--step-duration must be in (0, 1h], got %s", l.stepDur)
	case l.findBudget < l.stepDur:
		return usageErrorf("--find-max-budget %s is shorter than one step (%s)", l.findBudget, l.stepDur)
	case !(l.findStart > 0) || !(l.findLimit >= l.findStart) || l.findLimit > 1e9:
		return usageErrorf("--find-max-start and --find-max-limit must be 0 < start <= limit <= 1e9, got %g and %g", l.findStart, l.findLimit)
	case l.warmup > 0:
		return usageErrorf("--find-max warms each step up itself (a sixth of --step-duration): drop --warmup")
	}
	s.FindMax = &runner.FindMax{Step: l.stepDur, Start: l.findStart, Limit: l.findLimit, Budget: l.findBudget}
	// The cell's window is one step; Check wants a length.
	s.Duration, s.Requests = l.stepDur, 0
	return nil
}

// shardFlag returns --shard, or its default from the environment.
func (l *loadFlags) shardFlag() (bench.Shard, error) {
	spec, from := l.shard, "--shard"
	if spec == "" {
		idx, count := os.Getenv(envShardIndex), os.Getenv(envShardCount)
		if idx == "" || count == "" {
			return bench.Shard{}, nil
		}
		spec, from = idx+"/"+count, "$"+envShardIndex+"/$"+envShardCount
	}
	sh, err := bench.ParseShard(spec)
	if err != nil {
		return sh, usageErrorf("%s: %w", from, err)
	}
	return sh, nil
}
