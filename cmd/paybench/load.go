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
}

func (l *loadFlags) bind(fs *pflag.FlagSet) {
	fs.Int64Var(&l.requests, "requests", 0, "stop each cell after this many measured operations (default: run for --duration, 10s when neither is set)")
	fs.DurationVar(&l.warmup, "warmup", 0, "run the load this long before measuring (not recorded)")
	fs.StringVar(&l.rate, "rate", "", "open loop at this many operations per second, or a linear ramp FROM:TO over --duration (default: closed loop, as fast as the workers go)")
	fs.IntVar(&l.maxWorkers, "max-workers", 0, "open loop: add workers up to this many when every worker is busy and operations fall due (default: --concurrency)")
	fs.IntVar(&l.pipeline, "pipeline", 1, "operations per round trip: a go-redis pipeline or a rueidis DoMulti of N (1: one command per call; rueidis still auto-pipelines concurrent calls)")
	fs.IntVar(&l.keys, "keys", 1, "number of distinct keys (items, locks, users) the load spreads over (1: one hot key)")
	fs.StringVar(&l.keyDist, "key-dist", bench.KeyUniform, "how operations pick their key: uniform, zipf[:S] (default S 0.99) or hot[:F] (share F of operations on key 0, default 0.9)")
	fs.BoolVar(&l.quiet, "quiet", false, "no live progress line on stderr")
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
	return s, s.Check(cf.concurrency, maxWorkers)
}
