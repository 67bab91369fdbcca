package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// Defaults and bounds of `paybench load`.
const (
	// defaultLoadDuration is the measured window when neither --duration
	// nor --requests is given.
	defaultLoadDuration = 10 * time.Second
	// maxPipeline bounds --pipeline.
	maxPipeline = 10_000
	// maxLoadWorkers bounds --concurrency and --max-workers: each worker
	// holds four latency histograms (about 0.6 MB).
	maxLoadWorkers = 10_000
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

// loadPlan is a validated `paybench load` command line.
type loadPlan struct {
	op         scenarios.Operation
	cf         commonFlags
	lf         loadFlags
	ks         impl.Keyspace
	strategies []string
	pacer      bench.Pacer
	dist       *bench.KeyDist
	maxWorkers int
}

func cmdLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The operation's name comes first, as a scenario's does for run.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(stdout, "Usage: paybench load OPERATION [flags]\n\nOperations: %s\n(paybench load OPERATION -h for its flags; paybench list describes them)\n", strings.Join(scenarios.OperationNames(), ", "))
			return nil
		}
		return usageErrorf("load needs an operation (one of: %s)", strings.Join(scenarios.OperationNames(), ", "))
	}
	plan, err := parseLoad(args, stdout)
	if err != nil {
		return err
	}

	srv, err := plan.cf.conn.provide(ctx, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()

	doc := newDocument("load")
	clients := map[string]map[string]string{}
	server := serverFacts(srv)
	conn := impl.ConnConfig{URL: srv.URL, Password: srv.Password, PoolSize: plan.maxWorkers}
	var runErr error
cells:
	for _, bname := range splitList(plan.cf.backends) {
		if ctx.Err() != nil {
			break
		}
		be, err := backends.Open(ctx, bname, conn)
		if err != nil {
			runErr = withCode(exitRedis, fmt.Errorf("%s: %w", bname, err))
			break
		}
		clients[bname] = be.Settings()
		for _, sname := range plan.strategies {
			if ctx.Err() != nil {
				break
			}
			cell, err := loadCell(ctx, plan, be, srv, conn, sname, stderr)
			var ee *exitError
			if errors.As(err, &ee) && ee.code == exitUsage {
				runErr = err
				be.Close()
				break cells
			}
			doc.Cells = append(doc.Cells, cell)
			if err != nil && ctx.Err() == nil && redisenv.IsConnectError(err) {
				runErr = withCode(exitRedis, err)
				break
			}
		}
		be.Close()
		if runErr != nil {
			break
		}
	}
	doc.Finished = time.Now().UTC()
	doc.Interrupted = ctx.Err() != nil
	doc.Fairness = bench.Fairness(server, clients)

	if len(doc.Cells) > 0 || runErr == nil {
		if err := reports.Text(stdout, doc); err != nil {
			return err
		}
	}
	if err := finish(ctx, srv, plan.ks, plan.cf.keep, stdout, stderr); err != nil && runErr == nil {
		runErr = err
	}
	var gateErr error
	if len(doc.Cells) > 0 || runErr == nil {
		gateErr = judgeGates(doc, &plan.cf.outputFlags, stdout)
		if err := writeOutputs(doc, &plan.cf.outputFlags); err != nil {
			return err
		}
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
	for _, c := range doc.Cells {
		if c.Verdict == result.Error {
			return &exitError{code: exitFail}
		}
	}
	return nil
}

// parseLoad parses and validates the command line; every problem is a
// usage error.
func parseLoad(args []string, stdout io.Writer) (*loadPlan, error) {
	op, err := scenarios.LookupOperation(args[0])
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	p := &loadPlan{op: op}
	fs := newFlagSet("load")
	p.cf.bind(fs)
	p.lf.bind(fs)
	if f := fs.Lookup("strategy"); f != nil {
		f.Usage = fmt.Sprintf("strategies, comma-separated (default %s; known: %s)", op.Strategies[0], strings.Join(op.Strategies, ", "))
	}
	if err := parse(fs, args[1:], stdout, "paybench load "+op.Name+" [flags]\n\n"+op.Description); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if p.ks, err = p.cf.validate(); err != nil {
		return nil, err
	}
	lf := &p.lf
	switch {
	case p.cf.concurrency > maxLoadWorkers:
		return nil, usageErrorf("--concurrency must be <= %d, got %d", maxLoadWorkers, p.cf.concurrency)
	case lf.requests < 0:
		return nil, usageErrorf("--requests must be >= 0, got %d", lf.requests)
	case lf.warmup < 0:
		return nil, usageErrorf("--warmup must be >= 0, got %s", lf.warmup)
	case lf.pipeline < 1 || lf.pipeline > maxPipeline:
		return nil, usageErrorf("--pipeline must be 1..%d, got %d", maxPipeline, lf.pipeline)
	case lf.maxWorkers < 0 || lf.maxWorkers > maxLoadWorkers:
		return nil, usageErrorf("--max-workers must be 0..%d, got %d", maxLoadWorkers, lf.maxWorkers)
	case lf.maxWorkers > 0 && lf.rate == "":
		return nil, usageErrorf("--max-workers needs --rate (a closed loop runs exactly --concurrency workers)")
	case lf.maxWorkers > 0 && lf.maxWorkers < p.cf.concurrency:
		return nil, usageErrorf("--max-workers %d is below --concurrency %d", lf.maxWorkers, p.cf.concurrency)
	}
	if p.cf.duration == 0 && lf.requests == 0 {
		p.cf.duration = defaultLoadDuration
	}
	if p.dist, err = bench.ParseKeyDist(lf.keyDist, lf.keys); err != nil {
		return nil, usageErrorf("--key-dist/--keys: %w", err)
	}
	if lf.rate != "" {
		if p.pacer, err = bench.ParseRate(lf.rate, lf.warmup, p.cf.duration); err != nil {
			return nil, usageErrorf("--rate: %w", err)
		}
	}
	p.maxWorkers = max(lf.maxWorkers, p.cf.concurrency)
	p.strategies = splitList(p.cf.strategies)
	if len(p.strategies) == 0 {
		p.strategies = op.Strategies[:1]
	}
	for _, s := range p.strategies {
		if !contains(op.Strategies, s) {
			return nil, usageErrorf("unknown strategy %q for %s (known: %s)", s, op.Name, strings.Join(op.Strategies, ", "))
		}
	}
	return p, nil
}

// loadCell sets up and drives one (backend, strategy) cell under its own
// keyspace.
func loadCell(ctx context.Context, p *loadPlan, be impl.Backend, srv *redisenv.Server, conn impl.ConnConfig, strategy string, stderr io.Writer) (result.Cell, error) {
	cell := result.Cell{Operation: p.op.Name, Backend: be.Name(), Strategy: strategy, Params: p.params()}
	fail := func(err error) (result.Cell, error) {
		cell.Verdict = result.Error
		if errors.Is(err, impl.ErrNotSupported) {
			cell.Verdict = result.Unsupported
		}
		cell.Error = oneLine(err.Error())
		return cell, err
	}
	ks, err := impl.NewKeyspace(p.ks.Key("load", p.op.Name, be.Name(), strategy) + ":")
	if err != nil {
		return fail(err)
	}
	env := &scenarios.LoadEnv{
		Backend: be,
		Admin:   srv.Admin(),
		Open: func(ctx context.Context) (impl.Backend, error) {
			return backends.Open(ctx, be.Name(), conn)
		},
		Keys:     ks,
		KeyCount: p.dist.N(),
		Pick:     func(w *bench.Worker) int { return p.dist.Pick(w.Rand) },
		Workers:  p.maxWorkers,
	}
	load, err := p.op.Setup(ctx, env, strategy)
	if err != nil {
		return fail(fmt.Errorf("set up %s: %w", p.op.Name, err))
	}
	if load.Close != nil {
		defer load.Close()
	}
	op := load.Op
	if p.lf.pipeline > 1 {
		if load.Batch == nil {
			return cell, usageErrorf("%s --strategy %s on %s cannot be pipelined; use --pipeline 1 or another strategy", p.op.Name, strategy, be.Name())
		}
		op = func(ctx context.Context, w *bench.Worker) error { return load.Batch(ctx, w, w.N) }
	}
	cfg := bench.Config{
		Concurrency: p.cf.concurrency,
		Requests:    p.lf.requests,
		Duration:    p.cf.duration,
		Warmup:      p.lf.warmup,
		Pacer:       p.pacer,
		Batch:       p.lf.pipeline,
		Seed:        p.cf.seed,
	}
	if p.pacer != nil {
		cfg.MaxWorkers = p.maxWorkers
	}
	if f, ok := stderr.(*os.File); ok && !p.lf.quiet && term.IsTerminal(int(f.Fd())) {
		line := bench.NewProgressLine(stderr, fmt.Sprintf("%s %s/%s", p.op.Name, be.Name(), strategy))
		cfg.Progress = line.Update
		defer line.Done()
	}
	st, err := bench.Run(ctx, cfg, op)
	if err != nil {
		return fail(err)
	}
	st.Fill(&cell)
	cell.Params["workers_peak"] = strconv.Itoa(st.Workers)
	if st.Capped {
		cell.Params["capped"] = "true"
	}
	if load.Figures != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		figs, err := load.Figures(fctx)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("read back %s: %w", p.op.Name, err))
		}
		if len(figs) > 0 {
			cell.Figures = figs
		}
	}
	cell.Summary = loadSummary(st, p.pacer)
	cell.Judge()
	return cell, nil
}

// params records the load's shape in each cell.
func (p *loadPlan) params() map[string]string {
	m := map[string]string{
		"concurrency": strconv.Itoa(p.cf.concurrency),
		"pipeline":    strconv.Itoa(p.lf.pipeline),
		"keys":        strconv.Itoa(p.dist.N()),
		"key_dist":    p.dist.String(),
		"warmup":      p.lf.warmup.String(),
		"seed":        strconv.FormatUint(p.cf.seed, 10),
		"loop":        "closed",
	}
	if p.cf.duration > 0 {
		m["duration"] = p.cf.duration.String()
	}
	if p.lf.requests > 0 {
		m["requests"] = strconv.FormatInt(p.lf.requests, 10)
	}
	if p.pacer != nil {
		m["loop"] = "open"
		m["rate"] = fmt.Sprint(p.pacer)
		m["max_workers"] = strconv.Itoa(p.maxWorkers)
	}
	return m
}

// loadSummary is the cell's one line: throughput against the target, the
// two p99s, dropped and failed operations.
func loadSummary(st *bench.Stats, pacer bench.Pacer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.0f ops/s", st.Throughput())
	if pacer != nil {
		fmt.Fprintf(&b, " (target %v)", pacer)
	}
	fmt.Fprintf(&b, " · p99 %s from the intended start, %s from the send",
		reports.FormatMicros(st.Corrected.ValueAtQuantile(99)), reports.FormatMicros(st.Uncorrected.ValueAtQuantile(99)))
	if pacer != nil {
		fmt.Fprintf(&b, " · dropped %d", st.Dropped)
	}
	if n := st.ErrorCount(); n > 0 {
		fmt.Fprintf(&b, " · %d failed", n)
	}
	if st.Capped {
		b.WriteString(" · stopped by the hard cap")
	}
	return b.String()
}
