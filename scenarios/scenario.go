// Package scenarios holds paybench's concurrent workloads. Each scenario
// sets up state under its keyspace, drives operations through the engine,
// then reads the server's state back and judges invariants. A registry lets
// the command line list and run them.
package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// Strategy is one strategy a scenario runs, with what it is expected to do.
type Strategy struct {
	Name   string
	Expect result.Expectation
	// Note says in a few words what the strategy is.
	Note string
}

// Common holds the parameters every scenario shares.
type Common struct {
	// Concurrency is the number of concurrent workers.
	Concurrency int
	// Duration bounds a time-driven scenario (0: the scenario's default).
	Duration time.Duration
	// Seed seeds every random choice.
	Seed uint64
	// Quick asks for the shortest run that still shows the scenario's
	// verdict reliably (`paybench suite --quick`): when Duration is 0, a
	// scenario may shrink its default duration or counts, as long as its
	// expected-to-break cells still reproduce and its expected-to-hold
	// cells still pass. False: the scenario's defaults.
	Quick bool
	// History says whether a cell records what its clients were told and
	// checks it for linearizability (--history, --history-timeout); the
	// zero value is auto.
	History histcheck.Options
}

// Env is what a scenario cell runs against.
type Env struct {
	// Backend is the client backend under test.
	Backend impl.Backend
	// Admin is a neutral client used to read the server's state back and
	// judge invariants, independent of the backend under test.
	Admin redis.UniversalClient
	// Open connects another, independent instance of the backend under
	// test (its own connections, as a separate application server would
	// have). The caller closes it.
	Open func(ctx context.Context) (impl.Backend, error)
	// Keys is the cell's own keyspace, under the run prefix.
	Keys impl.Keyspace
	// Common holds the shared parameters.
	Common Common
	// Log receives progress notes (may be io.Discard).
	Log io.Writer
	// Faulted is true when the plan applies faults to the cell (--fault):
	// a scenario that makes faults of its own when none is asked for
	// leaves them to the plan.
	Faulted bool
	// Origin is the cell's start, when its faults were started (zero:
	// none). Drive hands it to the engine, so the cell's series says
	// where it starts on the faults' time axis (Cell.SeriesStart).
	Origin time.Time
	// Monitor, when set, hears the live figures of every engine run of
	// the cell (--metrics-addr); Drive hands it to the engine.
	Monitor bench.Monitor
	// Redlock are the other independent servers of a Redlock deployment
	// (--redis redlock:N), Admin's server being the first; nil otherwise.
	Redlock []RedlockPeer
	// RedlockFirst is the first server of a Redlock deployment (Admin's),
	// to restart it; nil otherwise.
	RedlockFirst RedlockPeer
}

// RedlockPeer is one of the other servers of a Redlock deployment, as a
// scenario uses it: to read it and to restart it.
type RedlockPeer interface {
	// Admin is a neutral client of the server.
	Admin() redis.UniversalClient
	// Restart kills the server (as a crash would) and starts it again on
	// the same port, with what it persisted (nothing, without
	// persistence).
	Restart(ctx context.Context) error
	// Redacted is its address, safe to print.
	Redacted() string
}

// Drive runs op through the engine with cfg, classifying the errors of
// the backend under test by the backend's own rules, measuring the
// series from the cell's Origin and reporting to the cell's Monitor
// (unless cfg sets its own). Every scenario
// drives its timed operations through it.
func (e *Env) Drive(ctx context.Context, cfg bench.Config, op bench.Op) (*bench.Stats, error) {
	if cfg.Classify == nil && e.Backend != nil {
		cfg.Classify = e.Backend.Classify
	}
	if cfg.Origin.IsZero() {
		cfg.Origin = e.Origin
	}
	if cfg.Monitor == nil {
		cfg.Monitor = e.Monitor
	}
	return bench.Run(ctx, cfg, op)
}

// Scenario is one concurrent workload with invariants.
type Scenario interface {
	// Name is the scenario's command-line name, such as "oversell".
	Name() string
	// Description is one line for `paybench list`.
	Description() string
	// Strategies lists the strategies the scenario runs, in display order.
	Strategies() []Strategy
	// Flags binds the scenario's own parameters, with their defaults.
	Flags(fs *pflag.FlagSet)
	// Validate checks the parameters after parsing.
	Validate() error
	// Params returns the parameters as strings, for the report.
	Params() map[string]string
	// Run runs one cell. The returned cell carries invariants, figures and
	// latency; the caller sets the backend, strategy and expectation and
	// judges it. An error means the cell could not run (Redis failed).
	Run(ctx context.Context, env *Env, strategy string) (result.Cell, error)
}

// ErrJudgement marks an error of a cell's own bookkeeping — reading the
// server's state back to judge the invariants — as opposed to a failure of
// the operations under test. A scenario wraps such errors with
// JudgementError and returns the cell with everything it measured; the
// cell is then INCONCLUSIVE, its figures kept.
var ErrJudgement = errors.New("judgement incomplete")

// JudgementError wraps err as a failure of the cell's bookkeeping.
func JudgementError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrJudgement, err)
}

var (
	regMu    sync.Mutex
	registry = map[string]func() Scenario{}
)

// Register adds a scenario factory under its name. It panics on a duplicate
// name: registration happens in init functions.
func Register(factory func() Scenario) {
	name := factory().Name()
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("scenarios: duplicate scenario " + name)
	}
	registry[name] = factory
}

// New returns a fresh instance of the named scenario, with default
// parameters.
func New(name string) (Scenario, error) {
	regMu.Lock()
	f, ok := registry[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q (known: %v)", name, Names())
	}
	return f(), nil
}

// Names lists the registered scenarios, sorted.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FindStrategy returns the named strategy of s.
func FindStrategy(s Scenario, name string) (Strategy, bool) {
	for _, st := range s.Strategies() {
		if st.Name == name {
			return st, true
		}
	}
	return Strategy{}, false
}

// StrategyNames returns the names of s's strategies.
func StrategyNames(s Scenario) []string {
	var out []string
	for _, st := range s.Strategies() {
		out = append(out, st.Name)
	}
	return out
}

// Check builds an invariant from a condition and its figures.
func Check(name string, holds bool, format string, args ...any) result.Invariant {
	return result.Invariant{Name: name, Holds: holds, Detail: fmt.Sprintf(format, args...)}
}
