package runner

import (
	"context"
	"errors"
	"fmt"
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
	return ks, nil
}

// scenarioCell runs one scenario cell under its own keyspace, then
// completes and judges it.
func (r *run) scenarioCell(ctx context.Context, sc scenarios.Scenario, be impl.Backend, conn impl.ConnConfig, strategy string) (result.Cell, error) {
	st, _ := scenarios.FindStrategy(sc, strategy)
	stamp := func(c *result.Cell) {
		c.Scenario, c.Backend, c.Strategy, c.Expect = sc.Name(), be.Name(), strategy, st.Expect
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
		Admin:   r.plan.Server.Admin(),
		Redlock: redlockPeers(r.plan.Server),
		Faulted: len(r.plan.Faults) > 0,
		Keys:    ks,
		Common:  scenarios.Common{Concurrency: r.plan.Settings.Concurrency, Duration: r.plan.Settings.Duration, Seed: r.plan.Settings.Seed, Quick: r.plan.Settings.Quick},
		Log:     discard,
	}
	watch := r.watchServer(ctx)
	fr := r.startFaults(ctx, be)
	env.Origin = fr.Started()
	c, err := sc.Run(ctx, env, strategy)
	stamp(&c)
	c.Faults = fr.Stop()
	return r.complete(ctx, c, watch, err)
}

// loadCell sets up and drives one load cell under its own keyspace, then
// completes it.
func (r *run) loadCell(ctx context.Context, l LoadCells, be impl.Backend, conn impl.ConnConfig, strategy string) (result.Cell, error) {
	shape := l.Shape
	if shape.Keys == nil {
		shape.Keys, _ = bench.ParseKeyDist(bench.KeyUniform, 1)
	}
	if shape.Pipeline < 1 {
		shape.Pipeline = 1
	}
	workers := shape.workers(r.plan.Settings.Concurrency)
	c := result.Cell{Operation: l.Operation.Name, Backend: be.Name(), Strategy: strategy, Params: r.loadParams(shape, workers)}
	ks, err := r.cellKeyspace("load", l.Operation.Name, be.Name(), strategy)
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
		KeyCount: shape.Keys.N(),
		Pick:     func(w *bench.Worker) int { return shape.Keys.Pick(w.Rand) },
		Workers:  workers,
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
	cfg := bench.Config{
		Concurrency: r.plan.Settings.Concurrency,
		Requests:    shape.Requests,
		Duration:    shape.Duration,
		Warmup:      shape.Warmup,
		Pacer:       shape.Pacer,
		Batch:       shape.Pipeline,
		Seed:        r.plan.Settings.Seed,
		Classify:    be.Classify,
	}
	if shape.Pacer != nil {
		cfg.MaxWorkers = workers
	}
	if r.plan.OnEvent != nil {
		cfg.Progress = func(p bench.Progress) { r.emit(Event{Type: CellProgress, Index: r.done, Progress: p}) }
	}
	watch := r.watchServer(ctx)
	fr := r.startFaults(ctx, be)
	cfg.Origin = fr.Started()
	st, err := bench.Run(ctx, cfg, op)
	c.Faults = fr.Stop()
	if err != nil {
		return r.complete(ctx, c, watch, err)
	}
	st.Fill(&c)
	c.Params["workers_peak"] = strconv.Itoa(st.Workers)
	if st.Capped {
		c.Params["capped"] = "true"
	}
	c.Summary = loadSummary(st, shape.Pacer)
	if load.Figures != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
		figs, ferr := load.Figures(fctx)
		cancel()
		if ferr != nil {
			err = fmt.Errorf("read back %s: %w", l.Operation.Name, ferr)
		} else if len(figs) > 0 {
			c.Figures = figs
		}
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
	return m
}

// loadSummary is a load cell's one line: throughput against the target,
// the two p99s, dropped and failed operations.
func loadSummary(st *bench.Stats, pacer bench.Pacer) string {
	var b strings.Builder
	// The headline counts the operations that did not fail, as the cell's
	// throughput_ops does (complete); failures are counted apart below.
	ok := st.Throughput()
	if secs := st.Elapsed.Seconds(); secs > 0 {
		ok = float64(max(st.Ops-st.ErrorCount(), 0)) / secs
	}
	fmt.Fprintf(&b, "%.0f ops/s", ok)
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

// oneLine returns the first line of s.
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
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
