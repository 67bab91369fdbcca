// Package runner owns the life of a cell — one backend × strategy ×
// scenario or load operation — from a plan to the result document: it
// opens the backends, builds each cell's keyspace, runs each cell,
// completes and judges it, deletes the run's keys, judges gates and writes
// the outputs. The command line only turns flags into a Plan; a test can
// run a whole Plan without it.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/faults/proxy"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/impl/wiretap"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// Settings are the parameters every cell shares.
type Settings struct {
	// Client is how the clients under test are set up beyond their
	// address: retries and time-outs (ConnConfig's Retries, ReadTimeout
	// and DialTimeout; the rest of it is the runner's).
	Client impl.ConnConfig
	// Concurrency is the number of concurrent workers (>= 1).
	Concurrency int
	// Duration bounds each scenario cell (0: the scenario's own).
	Duration time.Duration
	// Seed seeds every random choice.
	Seed uint64
	// Quick asks scenarios for their shortest reliable run.
	Quick bool
	// History says whether scenario cells record and check their
	// histories for linearizability (--history, --history-timeout).
	History histcheck.Options
}

// ScenarioCells asks for the cells of one scenario: every strategy listed,
// on every backend of the plan.
type ScenarioCells struct {
	// Scenario is a validated scenario instance (its flags parsed).
	Scenario scenarios.Scenario
	// Strategies lists the strategies to run (each one of the scenario's).
	Strategies []string
}

// LoadShape is how the load cells of an operation drive it.
type LoadShape struct {
	// Requests stops each cell after this many measured operations (0:
	// run for Duration).
	Requests int64
	// Duration is the measured window (0 with Requests set: until done).
	Duration time.Duration
	// Warmup runs the load this long before measuring.
	Warmup time.Duration
	// Pacer makes the load an open loop at its rate (nil: closed loop).
	Pacer bench.Pacer
	// MaxWorkers bounds the workers an open loop may add (0: the plan's
	// concurrency).
	MaxWorkers int
	// Pipeline is the number of operations per round trip (1: none).
	Pipeline int
	// Keys is how operations pick their key (nil: one hot key); with a
	// Shard, over the shard's own keys.
	Keys *bench.KeyDist
	// Shard is this generator's part of the load: of the Pacer's schedule,
	// of Requests and of the keys (zero: all of it).
	Shard bench.Shard
	// StartAt, when set, holds the clock of the plan's first load cell
	// until that moment (after its setup), so that generators on several
	// machines start their schedules together.
	StartAt time.Time
	// FindMax, when set, makes each cell a search for the highest rate
	// that meets its gates, instead of a run at Pacer.
	FindMax *FindMax
}

// DefaultMaxWorkers is the ceiling an open loop grows its workers to when
// LoadShape.MaxWorkers is not set, further bounded by memory
// (OpenLoopCeiling): enough for 50 000 ops/s at 20 ms per operation.
const DefaultMaxWorkers = 1000

// openWorkerBytes is what one open-loop worker holds: two pairs of
// latency histograms (about 140 kB each).
const openWorkerBytes = 600 << 10

// OpenLoopCeiling returns the default worker ceiling of an open loop:
// DefaultMaxWorkers, or fewer when their histograms would take more than a
// quarter of the memory available (MemAvailable of /proc/meminfo, where
// the system says).
func OpenLoopCeiling() int {
	n := DefaultMaxWorkers
	if avail := memAvailable(); avail > 0 {
		n = min(n, max(int(avail/4/openWorkerBytes), 1))
	}
	return n
}

// workers returns the most workers a load cell may start: MaxWorkers, or
// in an open loop the default ceiling, never fewer than concurrency.
func (s LoadShape) workers(concurrency int) int {
	switch {
	case s.MaxWorkers > 0:
		return max(s.MaxWorkers, concurrency)
	case s.Pacer != nil || s.FindMax != nil:
		return max(OpenLoopCeiling(), concurrency)
	}
	return concurrency
}

// LoadCells asks for the load cells of one operation.
type LoadCells struct {
	// Operation is the operation to drive.
	Operation scenarios.Operation
	// Strategies lists the strategies to drive (each one of the
	// operation's).
	Strategies []string
	// Shape is how each cell drives it.
	Shape LoadShape
}

// Output is one result file to write, in one of reports' formats.
type Output struct {
	Path   string
	Format string
}

// Plan is everything a run needs: what to run, where, and what to write.
type Plan struct {
	// Kind is the document's kind: "run", "load" or "suite".
	Kind string
	// Mode is the suite's size ("" for run and load).
	Mode string
	// Command is the command line for the document, passwords redacted.
	Command []string
	// Server is the Redis to run against; the caller provides and closes
	// it.
	Server *redisenv.Server
	// Backends lists the client backends, each a name backends.Open knows.
	Backends []string
	// Scenarios and Loads are the cells to run, scenarios first.
	Scenarios []ScenarioCells
	Loads     []LoadCells
	// Settings are shared by every cell.
	Settings Settings
	// Keys is the run's keyspace; each cell gets its own under it.
	Keys impl.Keyspace
	// SharePrefix lets the run use a prefix that already holds keys (the
	// generators of one merged run contending on the same keys).
	SharePrefix bool
	// CheckPrefix refuses a prefix that already holds keys (a SCAN of the
	// database); set it when the user chose the prefix. A generated prefix
	// is new by construction and only takes the marker key.
	CheckPrefix bool
	// Keep leaves the run's keys in place at the end.
	Keep bool
	// Outputs are the result files to write, checked before any work.
	Outputs []Output
	// Gates are judged on every cell at the end.
	Gates []reports.Gate
	// Faults are applied to every cell, at times from the cell's start.
	Faults []faults.Spec
	// OnEvent, when set, hears of every cell's start and end and of the
	// load engine's live progress. It is called from the runner's
	// goroutine only.
	OnEvent func(Event)
	// Metrics, when set, starts the live export of a cell about to run
	// (--metrics-addr): every engine run of the cell reports to the
	// monitor it returns, which hears End when the cell is over.
	Metrics func(workload, backend, strategy string) CellMetrics
}

// CellMetrics exports one cell's live figures (Plan.Metrics).
type CellMetrics interface {
	bench.Monitor
	// End says the cell is over, with the operations its open loop
	// dropped (0 for a closed loop). It may be called more than once;
	// dropped operations are counted once.
	End(dropped int64)
}

// EventType says what an Event reports.
type EventType int

// Event types.
const (
	// CellStarted: Event.Cell names the cell about to run.
	CellStarted EventType = iota
	// CellProgress: Event.Progress holds a load cell's live figures.
	CellProgress
	// CellDone: Event.Cell is the finished, judged cell; Event.Took its
	// wall-clock time.
	CellDone
	// Note: Event.Message is a line for the user (a warning, the kept
	// keys' prefix).
	Note
)

// Event is one thing the runner reports while it works.
type Event struct {
	Type EventType
	// Index is the cell's number (1-based) and Total the plan's cells.
	Index, Total int
	Cell         *result.Cell
	Progress     bench.Progress
	Took         time.Duration
	Message      string
}

// Run runs plan and returns its document, complete as far as the run got.
// The document is returned whenever the run started, also with an error;
// the error carries its exit code (errext): a usage problem found before
// any work (Usage), a Redis that failed mid-run or a cleanup that failed
// (Redis), a failed gate (Fail) or an interrupt (Interrupted). Verdicts are
// not errors: VerdictError turns them into an exit code.
func Run(ctx context.Context, plan *Plan) (*result.Document, error) {
	if err := plan.check(); err != nil {
		return nil, err
	}
	r := &run{plan: plan, clients: map[string]map[string]string{}, total: plan.countCells()}
	doc := newDocument(plan)
	r.doc = doc
	if err := r.claimKeys(ctx); err != nil {
		return nil, err
	}
	if err := r.startProxy(ctx); err != nil {
		r.cleanup(ctx)
		return nil, err
	}
	defer r.stopProxy()

	runErr := r.runScenarios(ctx)
	if runErr == nil {
		runErr = r.runLoads(ctx)
	}
	doc.Finished = time.Now().UTC()
	doc.Interrupted = ctx.Err() != nil
	doc.Fairness = bench.Fairness(r.serverFacts(ctx), r.clients)

	if err := r.cleanup(ctx); err != nil {
		if runErr == nil {
			runErr = err
		} else {
			runErr = fmt.Errorf("%w; and: %v", runErr, err)
		}
	}
	gateErr := judgeGates(doc, plan.Gates)
	if err := writeOutputs(doc, plan.Outputs); err != nil {
		return doc, errext.WithExitCodeIfNone(err, errext.Fail)
	}
	switch {
	case runErr != nil:
		return doc, runErr
	case doc.Interrupted:
		return doc, errext.New(errext.Interrupted, "interrupted; partial results written")
	}
	return doc, gateErr
}

// check validates what can be checked before any work: the plan's shape
// and its outputs.
func (p *Plan) check() error {
	switch {
	case p.Server == nil:
		return errext.New(errext.Usage, "runner: no server")
	case len(p.Backends) == 0:
		return errext.New(errext.Usage, "no backend selected")
	case p.Settings.Concurrency < 1:
		return errext.Errorf(errext.Usage, "--concurrency must be >= 1, got %d", p.Settings.Concurrency)
	case p.Keys.Prefix() == "":
		return errext.New(errext.Usage, "runner: no key prefix")
	}
	for _, b := range p.Backends {
		if _, err := backends.Opener(b); err != nil {
			return errext.WithExitCodeIfNone(err, errext.Usage)
		}
	}
	if err := p.Settings.Client.Validate(); err != nil {
		return errext.WithExitCodeIfNone(err, errext.Usage)
	}
	if err := faults.CheckCluster(p.Faults, p.Server.Cluster); err != nil {
		return errext.WithExitCodeIfNone(err, errext.Usage)
	}
	if err := faults.Check(p.Faults, p.Server.Kind, !strings.HasPrefix(p.Server.URL, "unix:")); err != nil {
		return errext.WithExitCodeIfNone(err, errext.Usage)
	}
	return checkOutputs(p.Outputs)
}

// countCells counts the cells the plan will run.
func (p *Plan) countCells() int {
	n := 0
	for _, s := range p.Scenarios {
		n += len(p.Backends) * len(s.Strategies)
	}
	for _, l := range p.Loads {
		n += len(p.Backends) * len(l.Strategies)
	}
	return n
}

// run is one plan in progress.
type run struct {
	plan    *Plan
	doc     *result.Document
	clients map[string]map[string]string
	// cellKeys lists every cell keyspace created, for the cleanup.
	cellKeys []impl.Keyspace
	// pending lists the cell keyspaces not deleted yet.
	pending []impl.Keyspace
	marked  bool // the marker key is ours
	// proxy carries the network faults (nil when none is asked for); the
	// backends under test connect through it, at clientURL.
	proxy     faults.Proxy
	stopProxy func()
	clientURL string
	done      int
	// startAtUsed: the first load cell took LoadShape.StartAt.
	startAtUsed bool
	total       int
	// monitor is the running cell's live export (nil: none).
	monitor CellMetrics
	// redirects counts, on a cluster, each backend's MOVED and ASK
	// replies (redirectCounter).
	redirects map[string]*wiretap.Counter
}

func (r *run) emit(e Event) {
	if r.plan.OnEvent != nil {
		e.Total = r.total
		r.plan.OnEvent(e)
	}
}

// open connects a backend and records its settings: under the backend's
// name, or under "NAME load" when a load's settings differ from the
// scenarios' (the loads size go-redis's pool to their workers).
func (r *run) open(ctx context.Context, name string, conn impl.ConnConfig, load bool) (impl.Backend, error) {
	be, err := backends.Open(ctx, name, conn)
	if errors.Is(err, impl.ErrNotSupported) {
		return nil, err
	}
	if err != nil {
		return nil, errext.WithExitCodeIfNone(fmt.Errorf("%s: %w", name, err), errext.Redis)
	}
	settings := be.Settings()
	key := name
	if load {
		if prev, ok := r.clients[name]; ok && maps.Equal(prev, settings) {
			return be, nil
		}
		if len(r.plan.Scenarios) > 0 {
			key = name + " load"
		}
	}
	if _, ok := r.clients[key]; !ok {
		r.clients[key] = settings
	}
	return be, nil
}

// cellFunc runs one cell on an open backend.
type cellFunc func(ctx context.Context, be impl.Backend, strategy string) (result.Cell, error)

// runCells runs every strategy of one scenario or operation on every
// backend. It stops at a Redis connection failure, a usage problem only a
// cell can find, or an interrupt.
func (r *run) runCells(ctx context.Context, strategies []string, conn impl.ConnConfig, load bool, name string, cell cellFunc) error {
	for _, bname := range r.plan.Backends {
		if ctx.Err() != nil {
			return nil
		}
		conn.Redirects = r.redirectCounter(bname)
		be, err := r.open(ctx, bname, conn, load)
		if errors.Is(err, impl.ErrNotSupported) {
			// The library cannot take the client settings asked for:
			// every cell of this backend says so.
			for _, st := range strategies {
				r.done++
				c := failed(result.Cell{Backend: bname, Strategy: st}, fmt.Errorf("%s: %w", bname, err))
				if load {
					c.Operation = name
				} else {
					c.Scenario = name
				}
				r.doc.Cells = append(r.doc.Cells, c)
				r.emit(Event{Type: CellDone, Index: r.done, Cell: &r.doc.Cells[len(r.doc.Cells)-1]})
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, st := range strategies {
			if ctx.Err() != nil {
				break
			}
			r.done++
			key := name + "/" + bname + "/" + st
			r.emit(Event{Type: CellStarted, Index: r.done, Message: key})
			if r.plan.Metrics != nil {
				r.monitor = r.plan.Metrics(name, bname, st)
			}
			start := time.Now()
			c, err := cell(ctx, be, st)
			if r.monitor != nil {
				r.monitor.End(0)
				r.monitor = nil
			}
			if code, ok := errext.Code(err); ok && code == errext.Usage {
				be.Close()
				return err
			}
			r.doc.Cells = append(r.doc.Cells, c)
			r.emit(Event{Type: CellDone, Index: r.done, Cell: &r.doc.Cells[len(r.doc.Cells)-1], Took: time.Since(start)})
			// A failed deletion is retried, and reported, by the final
			// cleanup.
			_ = r.dropCells(ctx)
			if err != nil && ctx.Err() == nil && redisenv.IsConnectError(err) {
				be.Close()
				return errext.WithExitCodeIfNone(err, errext.Redis)
			}
		}
		be.Close()
	}
	return nil
}

// scenarioConn is how scenario cells connect: one go-redis connection per
// worker, since go-redis's default pool (10 per GOMAXPROCS) would make
// workers queue for a connection and skew the comparison with rueidis,
// which multiplexes.
func (r *run) scenarioConn() impl.ConnConfig {
	return r.conn(r.plan.Settings.Concurrency)
}

// conn is how the backends under test connect: to the server, or through
// the fault proxy when the plan has network faults, with the server's TLS
// settings.
func (r *run) conn(pool int) impl.ConnConfig {
	srv := r.plan.Server
	url := srv.URL
	if r.clientURL != "" {
		url = r.clientURL
	}
	c := r.plan.Settings.Client
	c.URL, c.Password, c.PoolSize = url, srv.Password, pool
	// The server's TLS configuration, its server name taken from the
	// server's URL: it still verifies through the fault proxy's address.
	c.TLS = srv.TLS
	c.Cluster = srv.Cluster
	for _, p := range srv.RedlockPeers() {
		c.RedlockURLs = append(c.RedlockURLs, p.URL)
	}
	return c
}

// startProxy starts the in-process proxy when a fault needs it.
func (r *run) startProxy(ctx context.Context) error {
	r.stopProxy = func() {}
	need := false
	for _, s := range r.plan.Faults {
		need = need || s.NeedsProxy()
	}
	if !need {
		return nil
	}
	u, err := url.Parse(r.plan.Server.URL)
	if err != nil {
		return errext.WithExitCodeIfNone(fmt.Errorf("fault proxy: %w", err), errext.Usage)
	}
	p, err := proxy.Start(ctx, u.Host)
	if err != nil {
		return errext.WithExitCodeIfNone(fmt.Errorf("fault proxy: %w", err), errext.Redis)
	}
	if r.clientURL, err = proxy.RewriteURL(r.plan.Server.URL, p.Addr()); err != nil {
		p.Close()
		return errext.WithExitCodeIfNone(fmt.Errorf("fault proxy: %w", err), errext.Usage)
	}
	r.proxy, r.stopProxy = p, func() { p.Close() }
	return nil
}

// runScenarios runs every scenario cell of the plan.
func (r *run) runScenarios(ctx context.Context) error {
	conn := r.scenarioConn()
	for _, sc := range r.plan.Scenarios {
		err := r.runCells(ctx, sc.Strategies, conn, false, sc.Scenario.Name(), func(ctx context.Context, be impl.Backend, st string) (result.Cell, error) {
			return r.scenarioCell(ctx, sc.Scenario, be, conn, st)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// runLoads runs every load cell of the plan.
func (r *run) runLoads(ctx context.Context) error {
	for _, l := range r.plan.Loads {
		conn := r.conn(l.Shape.workers(r.plan.Settings.Concurrency))
		err := r.runCells(ctx, l.Strategies, conn, true, l.Operation.Name, func(ctx context.Context, be impl.Backend, st string) (result.Cell, error) {
			return r.loadCell(ctx, l, be, conn, st)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// newDocument starts the result document of a plan.
func newDocument(p *Plan) *result.Document {
	return &result.Document{
		Schema:  result.SchemaVersion,
		Kind:    p.Kind,
		Mode:    p.Mode,
		Tool:    result.Tool{Version: bench.Version(), Commit: bench.Commit()},
		Command: p.Command,
		Started: time.Now().UTC(),
		Host:    hostname(),
	}
}

// serverFacts describes srv for the fairness block, its password redacted.
func serverFacts(srv *redisenv.Server) result.Server {
	return result.Server{Kind: string(srv.Kind), Version: srv.Version, Address: srv.Redacted(), Mode: srv.Mode}
}

// discard is where scenario cells write their progress notes.
var discard io.Writer = io.Discard
