package runner

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// readBackTimeout bounds a cell's reads of the server after its load.
const readBackTimeout = 30 * time.Second

// cellKeyspace returns a new cell's own keyspace under the run's and
// records it for the cleanup.
func (r *run) cellKeyspace(parts ...string) (impl.Keyspace, error) {
	ks, err := impl.NewKeyspace(r.plan.Keys.Key(parts...) + ":")
	if err != nil {
		return impl.Keyspace{}, err
	}
	r.cellKeys = append(r.cellKeys, ks)
	r.pending = append(r.pending, ks)
	return ks, nil
}

// scenarioCell runs one scenario cell under its own keyspace, then
// completes and judges it.
func (r *run) scenarioCell(ctx context.Context, sc scenarios.Scenario, be impl.Backend, conn impl.ConnConfig, strategy string) (result.Cell, error) {
	conn.Redirects = r.redirectCounter(be.Name())
	st, _ := scenarios.FindStrategy(sc, strategy)
	stamp := func(c *result.Cell) {
		c.Scenario, c.Backend, c.Strategy = sc.Name(), be.Name(), strategy
		if c.Expect == "" {
			// A scenario may set the expectation for the deployment and
			// fault it ran under (lock-race's Redlock restart fault).
			c.Expect = st.Expect
		}
		own := c.Params // the cell's own (a library's settings), under the scenario's
		c.Params = sc.Params()
		for k, v := range own {
			if _, ok := c.Params[k]; !ok {
				if c.Params == nil {
					c.Params = map[string]string{}
				}
				c.Params[k] = v
			}
		}
	}
	ks, err := r.cellKeyspace(sc.Name(), be.Name(), strategy)
	if err != nil {
		var c result.Cell
		stamp(&c)
		return failed(c, err), err
	}
	env := &scenarios.Env{
		Backend: be,
		Open: func(ctx context.Context) (impl.Backend, error) {
			return r.openInstance(ctx, be.Name(), conn)
		},
		Admin:        r.plan.Server.Admin(),
		Redlock:      redlockPeers(r.plan.Server),
		RedlockFirst: redlockFirst(r.plan.Server),
		Faulted:      len(r.plan.Faults) > 0,
		Keys:         ks,
		Common:       scenarios.Common{Concurrency: r.plan.Settings.Concurrency, Duration: r.plan.Settings.Duration, Seed: r.plan.Settings.Seed, Quick: r.plan.Settings.Quick, History: r.plan.Settings.History},
		Log:          discard,
	}
	if r.monitor != nil {
		env.Monitor = r.monitor
	}
	watch := r.watchServer(ctx)
	watch.redirects, watch.redirectsAt = conn.Redirects, conn.Redirects.Read()
	fr := r.startFaults(ctx, be)
	env.Origin = fr.Started()
	c, err := sc.Run(ctx, env, strategy)
	stamp(&c)
	// The plan's faults, then those the scenario made itself (lock-race's
	// restart of the first Redlock server).
	c.Faults = append(fr.Stop(), c.Faults...)
	return r.complete(ctx, c, watch, err)
}

// loadCell sets up and drives one load cell under its own keyspace, then
// completes it.
func (r *run) loadCell(ctx context.Context, l LoadCells, be impl.Backend, conn impl.ConnConfig, strategy string) (result.Cell, error) {
	conn.Redirects = r.redirectCounter(be.Name())
	shape := l.Shape
	if shape.Keys == nil {
		shape.Keys, _ = bench.ParseKeyDist(bench.KeyUniform, 1)
	}
	if shape.Pipeline < 1 {
		shape.Pipeline = 1
	}
	workers := shape.workers(r.plan.Settings.Concurrency)
	keys := shape.Keys
	var err error
	if shape.Shard.Split() {
		// The shard spreads over its own part of the keys, the same way.
		if keys, err = bench.ParseKeyDist(shape.Keys.String(), shape.Shard.Keys(shape.Keys.N())); err != nil {
			return result.Cell{}, errext.WithExitCodeIfNone(err, errext.Usage)
		}
	}
	c := result.Cell{Operation: l.Operation.Name, Backend: be.Name(), Strategy: strategy, Params: r.loadParams(shape, workers)}
	parts := []string{"load", l.Operation.Name, be.Name(), strategy}
	if shape.Shard.Split() {
		// Each shard's keys are its own, under a shared prefix too.
		parts = append(parts, fmt.Sprintf("shard-%d-of-%d", shape.Shard.Index, shape.Shard.Count))
	}
	ks, err := r.cellKeyspace(parts...)
	if err != nil {
		return failed(c, err), err
	}
	env := &scenarios.LoadEnv{
		Backend: be,
		Admin:   r.plan.Server.Admin(),
		Open: func(ctx context.Context) (impl.Backend, error) {
			return r.openInstance(ctx, be.Name(), conn)
		},
		Keys:     ks,
		KeyCount: keys.N(),
		Pick:     func(w *bench.Worker) int { return keys.Pick(w.Rand) },
		Workers:  workers,
		History:  r.plan.Settings.History,
	}
	if shape.Pacer == nil && shape.FindMax == nil && shape.Duration == 0 && shape.Warmup == 0 {
		// A closed loop of a fixed count, without a warm-up.
		env.HistoryOps = shape.Shard.Requests(shape.Requests)
	}
	load, err := l.Operation.Setup(ctx, env, strategy)
	if err != nil {
		err = fmt.Errorf("set up %s: %w", l.Operation.Name, err)
		return failed(c, err), err
	}
	if load.Close != nil {
		defer load.Close()
	}
	for k, v := range load.Params {
		c.Params[k] = v
	}
	op := load.Op
	if shape.Pipeline > 1 {
		if load.Batch == nil {
			return c, errext.Errorf(errext.Usage, "%s --strategy %s on %s cannot be pipelined; use --pipeline 1 or another strategy", l.Operation.Name, strategy, be.Name())
		}
		op = func(ctx context.Context, w *bench.Worker) error { return load.Batch(ctx, w, w.N) }
	}
	pacer := shape.Shard.Pacer(shape.Pacer)
	cfg := bench.Config{
		Concurrency: r.plan.Settings.Concurrency,
		Requests:    shape.Shard.Requests(shape.Requests),
		Duration:    shape.Duration,
		Warmup:      shape.Warmup,
		Pacer:       pacer,
		Batch:       shape.Pipeline,
		Seed:        r.plan.Settings.Seed,
		Classify:    be.Classify,
	}
	if pacer != nil || shape.FindMax != nil {
		cfg.MaxWorkers = workers
	}
	stages, staged := shape.Pacer.(bench.StagesPacer)
	if staged {
		cfg.StageEnds = stages.Ends()
	}
	if !shape.StartAt.IsZero() && !r.startAtUsed {
		// Only the plan's first load cell can start with the others'.
		r.startAtUsed = true
		cfg.StartAt = shape.StartAt
		c.Params["start_at"] = shape.StartAt.UTC().Format(time.RFC3339Nano)
		if late := time.Since(shape.StartAt); late > 0 {
			c.Params["start_late"] = late.Round(time.Millisecond).String()
			r.emit(Event{Type: Note, Message: fmt.Sprintf("warning: --start-at %s passed %s before %s was ready; it started at once", shape.StartAt.UTC().Format(time.RFC3339), late.Round(time.Millisecond), l.Operation.Name)})
		}
	}
	if r.plan.OnEvent != nil {
		cfg.Progress = func(p bench.Progress) { r.emit(Event{Type: CellProgress, Index: r.done, Progress: p}) }
	}
	if r.monitor != nil {
		cfg.Monitor = r.monitor
	}
	watch := r.watchServer(ctx)
	watch.redirects, watch.redirectsAt = conn.Redirects, conn.Redirects.Read()
	fr := r.startFaults(ctx, be)
	cfg.Origin = fr.Started()
	var st *bench.Stats
	var search *result.Search
	if shape.FindMax != nil {
		st, search, err = shape.FindMax.search(ctx, cfg, op, c)
		if err == nil && st == nil {
			err = errext.New(errext.Interrupted, "interrupted before the search's first step")
		}
	} else {
		st, err = bench.Run(ctx, cfg, op)
	}
	c.Faults = fr.Stop()
	if r.monitor != nil && st != nil {
		r.monitor.End(st.Dropped)
	}
	if err != nil {
		return r.complete(ctx, c, watch, err)
	}
	st.Fill(&c)
	c.Params["workers_peak"] = strconv.Itoa(st.Workers)
	if st.Capped {
		c.Params["capped"] = "true"
	}
	if staged {
		st.FillStages(&c, stages, 1/float64(max(shape.Shard.Count, 1)))
	}
	missed := missedBy(st, pacer, workers)
	if missed != "" {
		c.Params["rate_missed_by"] = missed
	}
	c.Summary = loadSummary(st, pacer, missed, workers)
	if search != nil {
		c.Search = search
		c.Summary = searchSummary(search)
	}
	if load.Figures != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
		figs, ferr := load.Figures(fctx)
		cancel()
		if ferr != nil {
			err = fmt.Errorf("read back %s: %w", l.Operation.Name, ferr)
		} else if len(figs) > 0 {
			c.Figures = figs
		}
		// A search's steps share the load's tallies, and the cell keeps
		// only the best step's failures: failures settled in other steps
		// must not excuse them.
		if ferr == nil && load.Settled != nil && search == nil {
			c.Settled = load.Settled()
		}
	}
	if load.History != nil {
		c.History = load.History(ctx)
	}
	return r.complete(ctx, c, watch, err)
}

// openInstance connects another instance of a backend for a cell (an
// application server of its own). Under faults a connection may be reset
// or refused while it is made: it tries again, a few times, for a fault
// that makes it fail; without faults the first error stands.
func (r *run) openInstance(ctx context.Context, name string, conn impl.ConnConfig) (impl.Backend, error) {
	var err error
	for try := 0; try < 5; try++ {
		var be impl.Backend
		if be, err = backends.Open(ctx, name, conn); err == nil {
			return be, nil
		}
		class := impl.Classify(err)
		if len(r.plan.Faults) == 0 || !(class == impl.ClassConnection || class == impl.ClassRefused || class == impl.ClassTimeout || class == impl.ClassLoading) {
			return nil, err
		}
		if impl.Sleep(ctx, time.Duration(50<<try)*time.Millisecond) != nil {
			break
		}
	}
	return nil, err
}

// startFaults applies the plan's faults to the cell about to run: the
// connections killed are the backend under test's, by their name.
func (r *run) startFaults(ctx context.Context, be impl.Backend) *faults.Run {
	return faults.Start(ctx, faults.Target{
		Server:  r.plan.Server,
		Clients: []string{impl.DefaultClientName(be.Name())},
		Proxy:   r.proxy,
		Keys:    r.newestKeys(),
	}, r.plan.Faults)
}

// failed marks a cell that could not run: UNSUPPORTED when its backend
// lacks the strategy, else ERROR with the cause.
func failed(c result.Cell, err error) result.Cell {
	c.Verdict = result.Error
	if errors.Is(err, impl.ErrNotSupported) {
		c.Verdict = result.Unsupported
	}
	c.Error = oneLine(err.Error())
	if class := impl.Classify(err); c.Verdict == result.Error && class != impl.ClassOther {
		c.Error = class + ": " + c.Error
	}
	return c
}

// loadParams records the load's shape in each cell.
func (r *run) loadParams(s LoadShape, workers int) map[string]string {
	m := map[string]string{
		"concurrency": strconv.Itoa(r.plan.Settings.Concurrency),
		"pipeline":    strconv.Itoa(s.Pipeline),
		"keys":        strconv.Itoa(s.Keys.N()),
		"key_dist":    s.Keys.String(),
		"warmup":      s.Warmup.String(),
		"seed":        strconv.FormatUint(r.plan.Settings.Seed, 10),
		"loop":        "closed",
	}
	if s.Duration > 0 {
		m["duration"] = s.Duration.String()
	}
	if s.Requests > 0 {
		m["requests"] = strconv.FormatInt(s.Requests, 10)
	}
	if s.Pacer != nil {
		m["loop"] = "open"
		m["rate"] = fmt.Sprint(s.Pacer)
		m["max_workers"] = strconv.Itoa(workers)
	}
	if _, ok := s.Pacer.(bench.StagesPacer); ok {
		m["stages"] = m["rate"]
		delete(m, "rate")
	}
	if s.Shard.Split() {
		m["shard"] = s.Shard.String()
		m["shard_keys"] = strconv.Itoa(s.Shard.Keys(s.Keys.N()))
		if s.Requests > 0 {
			m["shard_requests"] = strconv.FormatInt(s.Shard.Requests(s.Requests), 10)
		}
	}
	if s.FindMax != nil {
		f := s.FindMax.withDefaults()
		m["loop"] = "open"
		m["find_max_step"] = f.Step.String()
		m["max_workers"] = strconv.Itoa(workers)
		delete(m, "duration")
	}
	return m
}

// Rate-miss causes, in Cell.Params["rate_missed_by"].
const (
	// MissedByServer: workers were free to send, but replies came back too
	// slowly for the schedule.
	MissedByServer = "server"
	// MissedByClientWorkers: every worker of the ceiling was busy.
	MissedByClientWorkers = "client-workers"
	// MissedByClientCPU: the load generator's process used (nearly) all
	// its CPUs.
	MissedByClientCPU = "client-cpu"
)

// missedBy says why an open loop dropped operations: "" when it met its
// schedule (or is a closed loop). The generator's CPU counts first (a
// starved generator cannot tell anything else), then the worker ceiling
// (every worker busy waiting on a reply), else the server.
func missedBy(st *bench.Stats, pacer bench.Pacer, workers int) string {
	if pacer == nil || st.Dropped == 0 {
		return ""
	}
	procs := float64(runtime.GOMAXPROCS(0))
	switch {
	case st.Wall > 0 && st.CPU.Seconds() >= 0.9*procs*st.Wall.Seconds():
		return MissedByClientCPU
	case st.Wall > 0 && st.RunWait.Seconds() >= 0.25*procs*st.Wall.Seconds():
		return MissedByClientCPU
	case st.CeilingReached || st.Workers >= workers:
		return MissedByClientWorkers
	}
	return MissedByServer
}

// loadSummary is a load cell's one line: throughput against the target,
// the two p99s, dropped and failed operations.
func loadSummary(st *bench.Stats, pacer bench.Pacer, missed string, workers int) string {
	var b strings.Builder
	// The headline counts the operations that did not fail, as the cell's
	// throughput_ops does (complete); failures are counted apart below.
	ok := st.Throughput()
	if secs := st.Elapsed.Seconds(); secs > 0 {
		ok = float64(max(st.Ops-st.ErrorCount(), 0)) / secs
	}
	fmt.Fprintf(&b, "%.0f ops/s", ok)
	if pacer != nil {
		label, inner := "target", pacer
		if sp, ok := inner.(bench.ShardPacer); ok {
			inner = sp.P
		}
		if _, ok := inner.(bench.StagesPacer); ok {
			label = "stages"
		}
		fmt.Fprintf(&b, " (%s %v)", label, pacer)
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
	switch missed {
	case MissedByClientCPU:
		fmt.Fprintf(&b, " · rate missed by the client: the load generator used %.1f of its %d CPUs and waited %.1fs for a CPU (other processes)",
			st.CPU.Seconds()/max(st.Wall.Seconds(), 1e-9), runtime.GOMAXPROCS(0), st.RunWait.Seconds())
	case MissedByClientWorkers:
		due := float64(st.Ops+st.Dropped) / max(st.Elapsed.Seconds(), 1e-9)
		fmt.Fprintf(&b, " · rate missed at the client's worker ceiling: all %d workers (--max-workers) were busy, each reply taking %s on average from the send (%.0f/s needs ≈ %.0f in flight)",
			workers, reports.FormatMicros(int64(st.Uncorrected.Mean())), due, due*st.Uncorrected.Mean()/1e6)
	case MissedByServer:
		fmt.Fprintf(&b, " · rate missed by the server: its replies were too slow (mean %s from the send) with workers to spare (%d of %d) and the generator's CPU not saturated", reports.FormatMicros(int64(st.Uncorrected.Mean())), st.Workers, workers)
	}
	return b.String()
}

// oneLine returns the first line of s.
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// redlockFirst returns the first server of a Redlock deployment, to
// restart it; nil for any other server.
func redlockFirst(srv *redisenv.Server) scenarios.RedlockPeer {
	if len(srv.RedlockPeers()) == 0 {
		return nil
	}
	return srv
}

// redlockPeers returns the other servers of a redlock kind as the
// scenarios see them (nil for any other kind).
func redlockPeers(srv *redisenv.Server) []scenarios.RedlockPeer {
	var out []scenarios.RedlockPeer
	for _, p := range srv.RedlockPeers() {
		out = append(out, p)
	}
	return out
}
