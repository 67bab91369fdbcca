// Package bench is paybench's load engine: workers that drive an operation
// in a closed loop (each worker starts its next operation when the last one
// ends) for a fixed count or a duration, each recording latency into its own
// HdrHistogram, merged when the run ends. Nothing on the per-operation path
// takes a lock or writes memory another worker writes.
//
// The schedule an operation follows is a source of intended start times:
// in a closed loop the intended start is the actual start; an open-loop
// source (a Pacer) slots in at the same place, and latency is then measured
// from the intended start, so a stall is counted rather than hidden.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 60 s at 3 significant digits, in microseconds.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

// NewHistogram returns an empty latency histogram in microseconds with
// paybench's bounds.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histDigits)
}

// Pacer decides when the next operation is due in an open loop: given the
// time elapsed since the start and the operations started so far, it returns
// how long to wait before the next one, or stop. Implementations compute
// from the start time, never from accumulated sleeps.
type Pacer interface {
	Pace(elapsed time.Duration, started uint64) (wait time.Duration, stop bool)
}

// Config shapes a run.
type Config struct {
	// Concurrency is the number of workers (default 1).
	Concurrency int
	// Requests stops the run after this many operations in all (0: no
	// count limit). The count is split over workers up front, so workers
	// share no counter.
	Requests int64
	// Duration stops the run after this long (0: no time limit). At least
	// one of Requests and Duration must be set.
	Duration time.Duration
	// Steps names per-step histograms a multi-step operation records into
	// with Worker.Observe(index, d).
	Steps []string
	// Seed seeds each worker's random source (worker i gets Seed+i).
	Seed uint64
	// Classify maps an operation's error to an error class (default
	// ClassifyError).
	Classify func(error) string
}

// Worker is the per-worker state an operation receives. It is owned by one
// goroutine; an operation must not keep it past its return.
type Worker struct {
	// ID is the worker's index, 0..Concurrency-1.
	ID int
	// Seq is the run-wide sequence number of the current operation. In a
	// fixed-count run the sequence numbers are exactly 0..Requests-1.
	Seq int64
	// Rand is the worker's own random source.
	Rand *rand.Rand

	steps []*hdrhistogram.Histogram
}

// Observe records d into step histogram i (an index into Config.Steps).
func (w *Worker) Observe(i int, d time.Duration) {
	recordDuration(w.steps[i], d)
}

// Op is one operation the engine drives.
type Op func(ctx context.Context, w *Worker) error

// Stats is what a run measured.
type Stats struct {
	// Ops counts the operations that ended, errors included.
	Ops int64
	// Errors counts failed operations by class.
	Errors map[string]int64
	// Elapsed is the measured window.
	Elapsed time.Duration
	// Corrected holds latency from each operation's intended start;
	// Uncorrected from its actual start. Equal in a closed loop.
	Corrected, Uncorrected *hdrhistogram.Histogram
	// Steps holds the per-step histograms, by name.
	Steps map[string]*hdrhistogram.Histogram
	// Dropped counts schedule slots an open loop could not serve.
	Dropped int64
	// Interrupted is true when the context ended the run early.
	Interrupted bool
}

// Throughput returns operations per second over the measured window.
func (s *Stats) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Elapsed.Seconds()
}

// ErrorCount returns the number of failed operations.
func (s *Stats) ErrorCount() int64 {
	var n int64
	for _, v := range s.Errors {
		n += v
	}
	return n
}

type workerState struct {
	w           Worker
	quota       int64 // -1: unlimited
	corrected   *hdrhistogram.Histogram
	uncorrected *hdrhistogram.Histogram
	ops         int64
	errs        map[string]int64
	_           [64]byte // keep workers' hot fields on separate cache lines
}

// Run drives op with cfg's workers until the count is done, the duration has
// passed or ctx ends, and returns the merged statistics. Operations receive
// ctx; when ctx ends the run stops, Stats.Interrupted is set and the error
// is nil: the partial statistics are still worth reporting.
func Run(ctx context.Context, cfg Config, op Op) (*Stats, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Requests < 0 || cfg.Duration < 0 {
		return nil, errors.New("bench: negative requests or duration")
	}
	if cfg.Requests == 0 && cfg.Duration == 0 {
		return nil, errors.New("bench: set Requests or Duration")
	}
	if cfg.Classify == nil {
		cfg.Classify = ClassifyError
	}
	workers := make([]*workerState, cfg.Concurrency)
	var base int64
	for i := range workers {
		ws := &workerState{
			quota:       -1,
			corrected:   NewHistogram(),
			uncorrected: NewHistogram(),
			errs:        map[string]int64{},
		}
		ws.w.ID = i
		ws.w.Rand = rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		for range cfg.Steps {
			ws.w.steps = append(ws.w.steps, NewHistogram())
		}
		if cfg.Requests > 0 {
			ws.quota = cfg.Requests / int64(cfg.Concurrency)
			if int64(i) < cfg.Requests%int64(cfg.Concurrency) {
				ws.quota++
			}
			ws.w.Seq = base
			base += ws.quota
		}
		workers[i] = ws
	}

	var stop atomic.Bool
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		t := time.AfterFunc(cfg.Duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	go func() {
		<-runCtx.Done()
		stop.Store(true)
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for _, ws := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			closedLoop(runCtx, ws, &stop, cfg.Classify, op)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	st := &Stats{
		Errors:      map[string]int64{},
		Elapsed:     elapsed,
		Corrected:   NewHistogram(),
		Uncorrected: NewHistogram(),
		Steps:       map[string]*hdrhistogram.Histogram{},
		Interrupted: ctx.Err() != nil,
	}
	for _, name := range cfg.Steps {
		st.Steps[name] = NewHistogram()
	}
	for _, ws := range workers {
		st.Ops += ws.ops
		st.Corrected.Merge(ws.corrected)
		st.Uncorrected.Merge(ws.uncorrected)
		for k, v := range ws.errs {
			st.Errors[k] += v
		}
		for i, name := range cfg.Steps {
			st.Steps[name].Merge(ws.w.steps[i])
		}
	}
	return st, nil
}

// closedLoop runs one worker: the next operation starts when the last ends,
// so the intended start is the actual start.
func closedLoop(ctx context.Context, ws *workerState, stop *atomic.Bool, classify func(error) string, op Op) {
	for ws.quota != 0 && !stop.Load() {
		begin := time.Now()
		err := op(ctx, &ws.w)
		d := time.Since(begin)
		recordDuration(ws.uncorrected, d)
		recordDuration(ws.corrected, d)
		ws.ops++
		if err != nil {
			ws.errs[classify(err)]++
		}
		ws.w.Seq++
		if ws.quota > 0 {
			ws.quota--
		}
	}
}

func recordDuration(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	// The value is clamped into range, so RecordValue cannot fail.
	_ = h.RecordValue(us)
}

// String summarises s on one line, for logs and tests.
func (s *Stats) String() string {
	return fmt.Sprintf("ops=%d errors=%d elapsed=%s p50=%dus p99=%dus max=%dus",
		s.Ops, s.ErrorCount(), s.Elapsed.Round(time.Millisecond),
		s.Corrected.ValueAtQuantile(50), s.Corrected.ValueAtQuantile(99), s.Corrected.Max())
}
