package scenarios

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// Operation is one raw operation for `paybench load`, outside any
// scenario: stock.deduct, lock.acquire-release, limit.allow, ... Each
// operation family registers its operations in an init function.
type Operation struct {
	// Name is the command-line name, "family.verb".
	Name string
	// Description is one line for `paybench list`.
	Description string
	// Strategies lists the strategies the operation runs; the first is the
	// default.
	Strategies []string
	// Setup prepares the keys of a load run and returns what to drive.
	Setup func(ctx context.Context, env *LoadEnv, strategy string) (*Load, error)
}

// LoadEnv is what an operation's load runs against.
type LoadEnv struct {
	// Backend is the client backend under test.
	Backend impl.Backend
	// Admin is a neutral client for setup and read-back.
	Admin redis.UniversalClient
	// Open connects another, independent instance of the backend.
	Open func(ctx context.Context) (impl.Backend, error)
	// Keys is the load cell's own keyspace.
	Keys impl.Keyspace
	// KeyCount is the number of distinct keys (items, locks, users) the
	// load spreads over (>= 1).
	KeyCount int
	// Pick chooses the key index (0..KeyCount-1) for the worker's current
	// operation, following the run's key distribution.
	Pick func(w *bench.Worker) int
	// Workers is the most workers the run may start (bench.Config's
	// MaxWorkers, or its Concurrency), so worker IDs are 0..Workers-1; an
	// operation may size per-worker state with it. 0 when unknown.
	Workers int
	// History says whether the cell records what every client was told
	// (--history on), for an operation with a model; HistoryOps is the
	// cell's operation count when known beforehand (--requests), else 0,
	// to size the recorder.
	History    histcheck.Options
	HistoryOps int64
}

// Load is a prepared operation.
type Load struct {
	// Op runs one operation.
	Op bench.Op
	// Batch runs n operations in one round trip (a go-redis pipeline or a
	// rueidis DoMulti). Nil when the operation cannot be pipelined.
	Batch func(ctx context.Context, w *bench.Worker, n int) error
	// Figures returns operation-specific figures after the run (hit ratio,
	// retries, ...). May be nil.
	Figures func(ctx context.Context) (map[string]float64, error)
	// Close releases what Setup opened (a dedicated client, ...), after
	// Figures. May be nil.
	Close func() error
	// Params are settings of the strategy under load to record in the
	// cell's params (a library's, under "lib."). May be nil.
	Params map[string]string
	// Settled returns, after Figures, how many measured operations failed
	// with their outcome unknown and were settled against the server
	// (result.Cell.Settled): the operation found out whether each had
	// happened. May be nil.
	Settled func() int64
	// History checks what the clients were told, after Figures, for an
	// operation with a model (the cell's history object; nil when it
	// recorded nothing). May be nil.
	History func(ctx context.Context) *result.History
}

var operations = map[string]Operation{}

// RegisterOperation adds a load operation. It panics on a duplicate name:
// registration happens in init functions.
func RegisterOperation(op Operation) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := operations[op.Name]; dup {
		panic("scenarios: duplicate operation " + op.Name)
	}
	operations[op.Name] = op
}

// LookupOperation returns the named load operation.
func LookupOperation(name string) (Operation, error) {
	regMu.Lock()
	op, ok := operations[name]
	regMu.Unlock()
	if !ok {
		return Operation{}, fmt.Errorf("unknown operation %q (known: %v)", name, OperationNames())
	}
	return op, nil
}

// OperationNames lists the registered load operations, sorted.
func OperationNames() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(operations))
	for n := range operations {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// workerSlots hands each worker of a load run its own *T (a tally, say).
// The slots of the first n workers are built up front, so that no timed
// operation builds one; a worker beyond them (an open loop grown past n,
// or an unknown worker count) gets its slot on first use.
type workerSlots[T any] struct {
	fixed []*T
	more  sync.Map // worker ID -> *T, for IDs from len(fixed) on
	build func() *T
}

// newWorkerSlots builds the slots of workers 0..n-1 with build.
func newWorkerSlots[T any](n int, build func() *T) *workerSlots[T] {
	s := &workerSlots[T]{fixed: make([]*T, max(n, 0)), build: build}
	for i := range s.fixed {
		s.fixed[i] = build()
	}
	return s
}

// get returns worker id's slot.
func (s *workerSlots[T]) get(id int) *T {
	if id >= 0 && id < len(s.fixed) {
		return s.fixed[id]
	}
	if v, ok := s.more.Load(id); ok {
		return v.(*T)
	}
	v, _ := s.more.LoadOrStore(id, s.build())
	return v.(*T)
}

// each calls f with every slot, once the run is over.
func (s *workerSlots[T]) each(f func(*T)) {
	for _, t := range s.fixed {
		f(t)
	}
	s.more.Range(func(_, v any) bool {
		f(v.(*T))
		return true
	})
}
