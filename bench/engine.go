// Package bench is paybench's load engine. Workers drive an operation either
// in a closed loop (each worker starts its next operation when the last one
// ends) or in an open loop (a Pacer says when each operation is due, and
// latency is measured from that intended start, so a stall is counted
// rather than hidden — coordinated omission, as wrk2 corrects it), for a
// fixed count or a duration, after an optional warm-up that is not
// recorded, within a hard cap.
//
// Each worker records into its own pair of interval HdrHistograms
// (corrected and uncorrected); a merger swaps them once per interval with an
// atomic handshake, builds the per-second series and the totals. Nothing on
// the per-operation path takes a lock, allocates, or writes memory another
// worker writes — but the first error of each class a worker meets, whose
// message it keeps (Stats.ErrorSamples).
package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
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

// Defaults of Config.
const (
	// DefaultStopTimeout is how long operations in flight may take to end
	// once the run is stopping, before their context is cancelled.
	DefaultStopTimeout = 5 * time.Second
	// DefaultMaxDuration caps a run that only Requests bounds.
	DefaultMaxDuration = time.Hour
	// DefaultInterval is the length of one point of the time series.
	DefaultInterval = time.Second
)

// Open-loop tuning.
const (
	// growEvery is how often the open loop checks whether it falls behind;
	// each check adds at most an eighth of the workers running, so the
	// pool grows steadily (doubling in about 60 ms) instead of piling up
	// workers that a starved machine cannot run anyway.
	growEvery = 10 * time.Millisecond
	// drainGrace lets workers start operations that fell due before the
	// end of the window for this long after it, before the rest count as
	// dropped: a short freeze of the load generator itself (the OS did
	// not schedule it) just before the end should not drop slots that a
	// moment later would have run.
	drainGrace = 100 * time.Millisecond
	// growLag is how late the next due operation may be before the open
	// loop adds workers.
	growLag = time.Millisecond
	// growWindow is how often the open loop checks that the workers it
	// added raised the rate at which calls end: by growGain of the share
	// added, at least 2 %. When they did not, more workers do not help —
	// the server or the generator's CPU is the limit — and it parks them
	// and adds none for growHold.
	growWindow = 100 * time.Millisecond
	growGain   = 0.5
	growHold   = time.Second
	// growStep bounds the workers added in one window, as a share of those
	// active at its start.
	growStep = 0.25
)

// Config shapes a run. Its zero fields take the defaults documented on
// each; at least one of Requests and Duration must be set.
type Config struct {
	// Concurrency is the number of workers (default 1); in an open loop,
	// the number it starts with.
	Concurrency int
	// Requests stops the run after this many measured operations (0: no
	// count limit). Operations of the warm-up come on top.
	Requests int64
	// Duration stops the run after this long, warm-up excluded (0: no time
	// limit).
	Duration time.Duration
	// Warmup runs the load this long before the measured window; nothing
	// started during the warm-up is recorded.
	Warmup time.Duration
	// MaxDuration is the hard cap on the whole run, warm-up included:
	// reaching it stops the run like the end of Duration and sets
	// Stats.Capped (default: none when Duration is set, which bounds the
	// run itself, else DefaultMaxDuration).
	MaxDuration time.Duration
	// StopTimeout bounds a graceful stop: once the run is stopping,
	// operations in flight get this long to end before their context is
	// cancelled (default DefaultStopTimeout).
	StopTimeout time.Duration

	// Pacer makes the run an open loop: operations start when the Pacer
	// says they are due, whether or not earlier ones have ended. Nil is a
	// closed loop.
	Pacer Pacer
	// MaxWorkers bounds the workers an open loop grows to when every
	// worker is busy and operations fall due (default Concurrency: no
	// growth). Operations due but never started count in Stats.Dropped.
	MaxWorkers int
	// Batch is the number of operations one call of the Op performs (a
	// pipeline of Batch commands, say). The call is recorded as Batch
	// operations; Worker.N says how many the current call must do, fewer
	// only at the end of a fixed count (default 1).
	Batch int

	// Steps names per-step histograms a multi-step operation records into
	// with Worker.Observe(index, d).
	Steps []string
	// Seed seeds each worker's random source (worker i gets Seed, i).
	Seed uint64
	// Classify maps an operation's error to an error class (default
	// impl.Classify, which knows no client library's types: pass the
	// backend's impl.Backend.Classify to name every cause).
	Classify func(error) string
	// Interval is the length of one point of Stats.Series (default
	// DefaultInterval).
	Interval time.Duration
	// Progress, when set, is called once per interval from the engine's
	// own goroutine (never concurrently with itself).
	Progress func(Progress)
	// Origin, when set, is the moment the caller's own clock starts — a
	// cell's start, when its faults were started — and Stats.SeriesStart
	// says how long after it the series starts, so the caller can place
	// its events on the series' time axis. Zero: SeriesStart stays 0.
	Origin time.Time
	// StageEnds, when set, splits the measured window into stages that end
	// at these times from its start (ascending, > 0; stages of a --stages
	// schedule): Stats.Stages holds each stage's own figures. An operation
	// counts in the stage in which it ended; an open loop's due and dropped
	// operations count in the stage in which they fell due.
	StageEnds []time.Duration
	// StartAt, when set, holds the run's clock until that moment (the
	// workers are built first): generators on several machines that share
	// it start their schedules together. A moment already past starts at
	// once.
	StartAt time.Time
	// Monitor, when set, hears every interval's figures while the run
	// goes (see Monitor). It costs each call two atomic stores of the
	// worker's own in-flight count; nil costs nothing.
	Monitor Monitor
}

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Requests < 0 || c.Duration < 0 || c.Warmup < 0 || c.MaxDuration < 0 || c.StopTimeout < 0:
		return c, errors.New("bench: negative requests, duration, warm-up, cap or stop time-out")
	case c.Requests == 0 && c.Duration == 0:
		return c, errors.New("bench: set Requests or Duration")
	case c.Concurrency < 0 || c.MaxWorkers < 0 || c.Batch < 0:
		return c, errors.New("bench: negative concurrency, workers or batch")
	case c.Pacer == nil && c.MaxWorkers > 0 && c.MaxWorkers != max(c.Concurrency, 1):
		return c, errors.New("bench: MaxWorkers needs a Pacer (a closed loop has a fixed number of workers)")
	}
	for i, end := range c.StageEnds {
		if end <= 0 || i > 0 && end <= c.StageEnds[i-1] {
			return c, errors.New("bench: StageEnds must be positive and ascending")
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = c.Concurrency
	}
	if c.MaxWorkers < c.Concurrency {
		return c, fmt.Errorf("bench: MaxWorkers %d is below Concurrency %d", c.MaxWorkers, c.Concurrency)
	}
	if c.Batch == 0 {
		c.Batch = 1
	}
	if c.MaxDuration == 0 && c.Duration == 0 {
		c.MaxDuration = DefaultMaxDuration
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Classify == nil {
		c.Classify = impl.Classify
	}
	return c, nil
}

// Worker is the per-worker state an operation receives. It is owned by one
// goroutine; an operation must not keep it past its return.
type Worker struct {
	// ID is the worker's index, 0..workers-1.
	ID int
	// Seq is the run-wide sequence number of the current call's first
	// operation; the call's operations are Seq..Seq+N-1, and no other call
	// of the run uses them. In a fixed-count run the measured operations
	// are exactly 0..Requests-1 (warm-up ones come after); in an open loop
	// Seq is the operation's slot in the Pacer's schedule.
	Seq int64
	// N is the number of operations the current call performs: Config.Batch,
	// or fewer for the last call of a fixed count.
	N int
	// Rand is the worker's own random source.
	Rand *rand.Rand

	steps     []*hdrhistogram.Histogram
	measuring bool
}

// Measuring reports whether the current call falls in the measured window
// (false during the warm-up). An operation that keeps tallies of its own
// skips warm-up calls with it, as the engine's statistics do.
func (w *Worker) Measuring() bool { return w.measuring }

// Observe records d into step histogram i (an index into Config.Steps).
// Calls during the warm-up are not recorded.
func (w *Worker) Observe(i int, d time.Duration) {
	if w.measuring {
		recordDuration(w.steps[i], d)
	}
}

// Op is one call the engine drives: one operation, or Worker.N of them when
// Config.Batch is above 1. An Op honours ctx. Everything an Op does is
// timed; its ctx is marked so (InTimedOp).
type Op func(ctx context.Context, w *Worker) error

// timedOpKey is the context key that marks an Op's context.
type timedOpKey struct{}

// InTimedOp reports whether ctx is the context the engine hands an Op, or
// derives from it: whatever runs under such a context counts in the
// operation's latency (warm-up calls included, which are timed but not
// recorded). A scenario's bookkeeping — setup, read-back, samplers — runs
// under other contexts, and a test can tell the two apart, for example in
// a client hook, to prove that a timed operation calls nothing but the
// backend under test. The mark costs nothing per operation: each worker
// derives its context once.
func InTimedOp(ctx context.Context) bool {
	marked, _ := ctx.Value(timedOpKey{}).(bool)
	return marked
}

// failedCounter is implemented by errors of a batch call that say how many
// of its operations failed (the others succeeded).
type failedCounter interface {
	FailedCount() int
}

// Stats is what a run measured.
type Stats struct {
	// Ops counts the measured operations that ended, errors included.
	Ops int64
	// Errors counts failed operations by class.
	Errors map[string]int64
	// ErrorSamples holds, per class of Errors, the message of the first
	// error of that class the measured window saw: the server's own words
	// for an error reply (impl.Reply), else the error's text; one line, at
	// most ErrorSampleMax bytes, with the credentials of any URL in it
	// redacted.
	ErrorSamples map[string]string
	// Elapsed is the measured window: from the end of the warm-up until
	// the run stopped (the end of Duration, the cap or the interrupt), or,
	// for a count that was done, until its last operation ended. Operations
	// in flight when the window closed still count in Ops.
	Elapsed time.Duration
	// Corrected holds latency from each operation's intended start;
	// Uncorrected from its actual start. Equal in a closed loop.
	Corrected, Uncorrected *hdrhistogram.Histogram
	// Steps holds the per-step histograms, by name.
	Steps map[string]*hdrhistogram.Histogram
	// Series holds one point per Config.Interval of the measured window
	// (latency from the intended start), the last one possibly shorter.
	Series []result.Point
	// SeriesStart is how long after Config.Origin the measured window —
	// the series' t = 0 — started (the run's start plus the warm-up); 0
	// when Origin is not set. An event at time x from Origin sits at
	// x - SeriesStart on the series' axis.
	SeriesStart time.Duration
	// Dropped counts operations an open loop's schedule made due in the
	// measured window that never started: every worker was busy until the
	// run stopped (for a normal end, until drainGrace after the window).
	// Ops+Dropped is the number of operations the schedule made due.
	Dropped int64
	// Workers is the most workers that ran at once.
	Workers int
	// Warmup is the warm-up that preceded the measured window.
	Warmup time.Duration
	// Interrupted is true when the context ended the run early.
	Interrupted bool
	// Capped is true when Config.MaxDuration stopped the run before its
	// count was done.
	Capped bool
	// Stages holds the figures of each stage of Config.StageEnds that the
	// run reached, in order (nil without stages).
	Stages []StageStats
	// CeilingReached is true when an open loop fell behind its schedule
	// while all Config.MaxWorkers workers were busy: the worker ceiling,
	// not the schedule, bounded the operations in flight.
	CeilingReached bool
	// Saturated is true when an open loop added workers and the rate at
	// which calls ended did not rise, or its threads waited for a CPU:
	// the server, or the generator's own CPU, could not go faster, and it
	// parked the workers it had added rather than pile up calls in flight.
	Saturated bool
	// CPU is the CPU time (user and system) the whole process used during
	// the run, warm-up included, and Wall the run's wall-clock time: CPU
	// near Wall × GOMAXPROCS means the load generator itself was saturated.
	CPU, Wall time.Duration
	// RunWait is how long, in all, the process's threads waited for a CPU
	// while ready to run during the run (Linux; 0 elsewhere): the share of
	// Wall × GOMAXPROCS that other processes took from the generator.
	RunWait time.Duration
}

// StageStats is what one stage of a run measured.
type StageStats struct {
	// Start and End bound the stage, from the start of the measured window
	// (End is where the window closed, for a stage an interrupt cut short).
	Start, End time.Duration
	// Ops counts the operations that ended in the stage, errors included.
	Ops int64
	// Errors counts them by class, as Stats.Errors does.
	Errors map[string]int64
	// Due counts the operations an open loop's schedule made due in the
	// stage, and Dropped those of them that never started (0 in a closed
	// loop).
	Due, Dropped int64
	// Corrected and Uncorrected are the stage's latencies, as in Stats.
	Corrected, Uncorrected *hdrhistogram.Histogram
}

// Elapsed returns the stage's length.
func (s *StageStats) Elapsed() time.Duration { return s.End - s.Start }

// Throughput returns the operations per second that ended in the stage.
func (s *StageStats) Throughput() float64 {
	if s.End <= s.Start {
		return 0
	}
	return float64(s.Ops) / s.Elapsed().Seconds()
}

// ErrorCount returns the stage's failed operations.
func (s *StageStats) ErrorCount() int64 {
	var n int64
	for _, v := range s.Errors {
		n += v
	}
	return n
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

// workerState is one worker: its Worker, its recorder and its counters.
// Only its own goroutine writes it, but for rec's handshake and the
// counters the engine reads after the worker ended.
type workerState struct {
	w       Worker
	rec     recorder
	busy    atomic.Bool     // open loop: in a call (the supervisor reads it)
	ended   atomic.Int64    // open loop: calls ended (the supervisor reads it)
	started int64           // measured operations started (open loop)
	byStage []int64         // ... of them, by the stage they fell due in
	stage   int             // the stage of the last due time counted
	dues    []time.Duration // open loop: due times of the current call
	timer   *time.Timer     // open loop: waits for the next due time
	samples errorSamples    // the first error of each class this worker saw
	// inFlight is the number of operations of the call in progress, 0
	// between calls; written only when the run has a Monitor.
	inFlight atomic.Int32
	_        [64]byte // keep workers' hot fields on separate cache lines
}

// paddedUint64 is an atomic counter alone on its cache line.
type paddedUint64 struct {
	_ [64]byte
	atomic.Uint64
	_ [56]byte
}

// engine is one run.
type engine struct {
	cfg   Config
	op    Op
	start time.Time

	measureFrom time.Duration // end of the warm-up, since start
	endAt       time.Duration // end of the measured window (MaxInt64: none)
	calls       int64         // closed loop, fixed count: measured calls in all

	runCtx  context.Context
	cancel  context.CancelFunc
	stop    atomic.Bool   // no call starts, no slot is claimed
	abort   chan struct{} // closed on an interrupt or the cap: sleepers give up their slots
	stopAt  atomic.Int64  // when the stop was decided, since start
	stopped sync.Once
	capped  atomic.Bool
	grace   *time.Timer // cancels runCtx StopTimeout after the stop

	workers  []*workerState // MaxWorkers slots, the first nWorkers in use
	nWorkers atomic.Int32
	wg       sync.WaitGroup
	// gate holds the first workers until all of them are started, so that
	// they begin together (a flash sale's opening) instead of in the order
	// their goroutines happened to be scheduled; closed once they are.
	gate    chan struct{}
	ceiling atomic.Bool // fell behind with every worker running
	// more workers did not raise the rate at which operations started
	saturated atomic.Bool
	// active is how many workers (the first ones) may claim slots; the
	// others are parked (open loop)
	active atomic.Int32
	// wake is closed (and replaced) when parked workers should look again:
	// more are let in, the schedule is done or the run stops
	wake atomic.Pointer[chan struct{}]

	// Open loop.
	next          paddedUint64 // the next slot of the schedule to claim
	done          atomic.Bool  // a worker reached the end of the schedule
	pastEnd       atomic.Bool  // ... because its next slot fell due after the window
	firstMeasured uint64       // the first slot due at or after measureFrom
	limit         uint64       // no slot at or after this one runs
}

// Run drives op with cfg's workers until the count is done, the duration
// has passed, the cap is reached or ctx ends, and returns the merged
// statistics. The first Concurrency workers begin together: none makes a
// call before all of them are started. Operations receive a context that
// ends when ctx does or when a stop outlasts Config.StopTimeout. When ctx
// ends the run stops, Stats.Interrupted is set and the error is nil: the
// partial statistics are still worth reporting.
func Run(ctx context.Context, cfg Config, op Op) (*Stats, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &engine{
		cfg:         cfg,
		op:          op,
		measureFrom: cfg.Warmup,
		endAt:       math.MaxInt64,
		abort:       make(chan struct{}),
		gate:        make(chan struct{}),
		workers:     make([]*workerState, cfg.MaxWorkers),
		limit:       math.MaxUint64,
	}
	if cfg.Duration > 0 {
		e.endAt = cfg.Warmup + cfg.Duration
	}
	if cfg.Pacer != nil {
		e.firstMeasured = slotsBefore(cfg.Pacer, e.measureFrom, math.MaxUint64)
		if cfg.Requests > 0 {
			e.limit = e.firstMeasured + uint64(cfg.Requests)
		}
	} else if cfg.Requests > 0 {
		e.calls = (cfg.Requests + int64(cfg.Batch) - 1) / int64(cfg.Batch)
	}
	e.runCtx, e.cancel = context.WithCancel(ctx)
	defer e.cancel()

	// Workers are built before the clock starts: their histograms are the
	// run's largest allocation.
	for range cfg.Concurrency {
		e.addWorker()
	}
	e.active.Store(int32(cfg.Concurrency))
	wake := make(chan struct{})
	e.wake.Store(&wake)
	if wait := time.Until(cfg.StartAt); !cfg.StartAt.IsZero() && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return &Stats{Interrupted: true, Corrected: NewHistogram(), Uncorrected: NewHistogram(),
				Errors: map[string]int64{}, ErrorSamples: map[string]string{}, Steps: map[string]*hdrhistogram.Histogram{}}, nil
		}
	}
	cpu0, wait0 := processCPU(), processRunWait()
	e.start = time.Now()
	stopInterrupt := context.AfterFunc(ctx, func() { e.requestStop(e.now(), true, false) })
	defer stopInterrupt()
	if cfg.MaxDuration > 0 {
		t := time.AfterFunc(cfg.MaxDuration, func() { e.requestStop(e.now(), true, true) })
		defer t.Stop()
	}
	if cfg.Duration > 0 {
		at := e.endAt
		if cfg.Pacer != nil {
			at += drainGrace
		}
		t := time.AfterFunc(at, func() { e.requestStop(e.endAt, false, false) })
		defer t.Stop()
	}

	m := newMerger(e)
	mergerDone := make(chan struct{})
	stopMerger := make(chan struct{})
	go func() {
		defer close(mergerDone)
		m.loop(stopMerger)
	}()

	n := int(e.nWorkers.Load())
	for _, ws := range e.workers[:n] {
		e.startWorker(ws)
	}
	close(e.gate)
	if cfg.Pacer != nil {
		e.supervise() // returns when the schedule is done or the run stops
	}
	e.wg.Wait()
	end := e.now()
	if ctx.Err() != nil {
		// The workers may have seen the interrupt before the goroutine
		// that turns it into a stop did: the window still closes now, not
		// at the end of Duration (a no-op when the stop was recorded).
		e.requestStop(end, true, false)
	}
	// No stop can start after this; one that did is over (Once).
	e.stopped.Do(func() {})
	if e.grace != nil {
		e.grace.Stop()
	}
	close(stopMerger)
	<-mergerDone
	m.collect(end)
	m.closeStages(e.windowEnd(end) - e.measureFrom)

	st := &Stats{
		Ops:          m.total.corrected.TotalCount(),
		Errors:       map[string]int64{},
		ErrorSamples: map[string]string{},
		Elapsed:      max(e.windowEnd(end)-e.measureFrom, 0),
		Corrected:    m.total.corrected,
		Uncorrected:  m.total.uncorrected,
		Steps:        map[string]*hdrhistogram.Histogram{},
		Series:       m.series,
		Workers:      int(e.nWorkers.Load()),
		Warmup:       cfg.Warmup,
		Interrupted:  ctx.Err() != nil,
		Capped:       e.capped.Load(),
		Stages:       m.stages,
		CPU:          processCPU() - cpu0,
		RunWait:      max(processRunWait()-wait0, 0),
		Wall:         end,
	}
	st.CeilingReached = e.ceiling.Load()
	st.Saturated = e.saturated.Load()
	if !cfg.Origin.IsZero() {
		st.SeriesStart = e.start.Add(e.measureFrom).Sub(cfg.Origin)
	}
	for k, v := range m.total.errs {
		st.Errors[k] = v
	}
	for _, name := range cfg.Steps {
		st.Steps[name] = NewHistogram()
	}
	workers := e.workers[:st.Workers]
	samples := make([]errorSamples, 0, len(workers))
	for _, ws := range workers {
		for i, name := range cfg.Steps {
			st.Steps[name].Merge(ws.w.steps[i])
		}
		samples = append(samples, ws.samples)
	}
	mergeSamples(st.ErrorSamples, samples)
	if cfg.Pacer != nil {
		st.Dropped = e.dropped(workers)
		e.stageDue(st.Stages, workers)
	}
	return st, nil
}

// windowEnd returns when the measured window closed, since the start:
// when the stop was requested, else the end of Duration, else (a count
// that was done) end, when the last call ended.
func (e *engine) windowEnd(end time.Duration) time.Duration {
	switch {
	case e.stop.Load():
		return min(time.Duration(e.stopAt.Load()), end)
	case e.pastEnd.Load():
		// The schedule reached the end of the window (its last calls may
		// have ended a little before it).
		return e.endAt
	}
	return min(e.endAt, end)
}

// now returns the time since the start of the run.
func (e *engine) now() time.Duration { return time.Since(e.start) }

// requestStop stops the run: no call starts after it (but open-loop slots
// already claimed, which are due before the end of the window), and calls
// in flight get Config.StopTimeout to end. at is when the stop counts from
// (the end of the window for a normal end). An abort (interrupt, cap) also
// gives up the claimed slots.
func (e *engine) requestStop(at time.Duration, abort, capped bool) {
	e.stopped.Do(func() {
		e.stopAt.Store(int64(at))
		e.capped.Store(capped)
		e.stop.Store(true)
		if e.wake.Load() != nil {
			e.wakeParked()
		}
		if abort {
			close(e.abort)
		}
		e.grace = time.AfterFunc(e.cfg.StopTimeout, e.cancel)
	})
}

// addWorker builds the next worker; false when MaxWorkers run already.
// Only one goroutine at a time adds workers (Run, then supervise).
func (e *engine) addWorker() (*workerState, bool) {
	i := int(e.nWorkers.Load())
	if i >= len(e.workers) {
		return nil, false
	}
	ws := &workerState{rec: newRecorder(e.cfg.Pacer == nil)}
	ws.w.ID = i
	ws.w.Rand = rand.New(rand.NewPCG(e.cfg.Seed, uint64(i)))
	for range e.cfg.Steps {
		ws.w.steps = append(ws.w.steps, NewHistogram())
	}
	if e.cfg.Pacer != nil {
		ws.byStage = make([]int64, len(e.cfg.StageEnds))
		ws.dues = make([]time.Duration, e.cfg.Batch)
		ws.timer = time.NewTimer(time.Hour)
		ws.timer.Stop()
	}
	e.workers[i] = ws
	e.nWorkers.Store(int32(i + 1)) // publishes e.workers[i] to the merger
	return ws, true
}

func (e *engine) startWorker(ws *workerState) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		// One marked context per worker, for every call it makes.
		ctx := context.WithValue(e.runCtx, timedOpKey{}, true)
		<-e.gate // closed already for a worker added during the run
		if e.cfg.Pacer != nil {
			e.openLoop(ctx, ws)
		} else {
			e.closedLoop(ctx, ws)
		}
	}()
}

// classify returns how many of a call's n operations failed and the class
// of the failure; skip is true for a failure the engine caused by
// cancelling the call at the end of the run, which is not recorded.
func (e *engine) classify(err error, n int64) (failed int64, class string, skip bool) {
	if err == nil {
		return 0, "", false
	}
	if e.runCtx.Err() != nil {
		return 0, "", true
	}
	failed = n
	var fc failedCounter
	if errors.As(err, &fc) {
		failed = min(max(int64(fc.FailedCount()), 0), n)
	}
	return failed, e.cfg.Classify(err), false
}

// closedLoop runs one worker of a closed loop, handing each call ctx (the
// worker's marked run context): the next call starts when the last one
// ends, so the intended start is the actual start. The clock is read once
// per call: a call's end is the next call's start, so the engine's own
// bookkeeping between two calls (tens of nanoseconds, below
// the histograms' 1 µs resolution) counts towards the next call, and the
// engine's overhead is one clock read and one record per call.
//
// Calls are numbered across workers by interleaving (worker i makes calls
// i, i+C, i+2C, ...), so a fixed count is split over the workers up front
// and they share no counter; call j covers operations j*Batch onwards.
// Warm-up calls of a fixed-count run take the numbers after the measured
// ones.
func (e *engine) closedLoop(ctx context.Context, ws *workerState) {
	w := &ws.w
	batch := int64(e.cfg.Batch)
	c, id := int64(e.cfg.Concurrency), int64(w.ID)
	var k, kw int64 // measured and warm-up calls made
	track := e.cfg.Monitor != nil
	begin := e.now()
	for !e.stop.Load() {
		measuring := begin >= e.measureFrom
		var call int64
		n := batch
		switch {
		case e.calls == 0: // time-bound: one numbering for all calls
			call = id + (k+kw)*c
		case measuring:
			call = id + k*c
			if call >= e.calls {
				return
			}
			n = min(batch, e.cfg.Requests-call*batch)
		default:
			call = e.calls + id + kw*c
		}
		w.Seq, w.N, w.measuring = call*batch, int(n), measuring
		if track {
			ws.inFlight.Store(int32(n))
		}
		err := e.op(ctx, w)
		end := e.now()
		if track {
			ws.inFlight.Store(0)
		}
		if !measuring {
			kw++
			begin = end
			continue
		}
		k++
		failed, class, skip := e.classify(err, n)
		if !skip {
			ws.rec.recordClosed(begin, end, n, failed, class)
			if failed > 0 {
				ws.samples.note(class, err, end)
			}
		}
		begin = end
	}
}

// openLoop runs one worker of an open loop, handing each call ctx (the
// worker's marked run context): it claims the next call's slots of the
// schedule, waits until the last of them is due, and runs it.
// When every worker was busy, the claimed slots are already late: the call
// starts at once and its latency, measured from the due times, shows it.
// A claimed slot is served even when the window ends while the worker
// waits for it (a timer's or the scheduler's slack is no reason to drop
// it); late slots still start up to drainGrace after the window, and the
// ones nobody claimed by then are dropped.
func (e *engine) openLoop(ctx context.Context, ws *workerState) {
	w := &ws.w
	batch := uint64(e.cfg.Batch)
	track := e.cfg.Monitor != nil
	// As in the closed loop, the clock is read once per call when the
	// worker is behind (a call's end is when it starts the next), twice
	// when it waits.
	now := e.now()
	for !e.stop.Load() {
		if wake := *e.wake.Load(); w.ID >= int(e.active.Load()) {
			// Parked: more workers did not help; wait to be let in again
			// (or for the end of the run).
			if e.done.Load() || e.stop.Load() {
				return
			}
			select {
			case <-wake:
			case <-e.abort:
				return
			case <-e.runCtx.Done():
				return
			}
			now = e.now()
			continue
		}
		first := e.next.Add(batch) - batch
		if first >= e.limit {
			e.finish()
			return
		}
		n := 0
		for i := range min(batch, e.limit-first) {
			at, ok := due(e.cfg.Pacer, first+i)
			if ok && at >= e.endAt || !ok && e.endAt != math.MaxInt64 {
				// Past the window, or the schedule ended within a window
				// of fixed length (stages): the window is its length.
				e.pastEnd.Store(true)
			}
			if !ok || at >= e.endAt {
				break
			}
			ws.dues[n] = at
			n++
		}
		if n == 0 {
			e.finish()
			return
		}
		dues := ws.dues[:n]
		if wait := dues[n-1] - now; wait > 0 {
			if !ws.sleep(e, wait) {
				return
			}
			now = e.now()
		}
		// Slots due before the measured window are warm-up.
		measured := dues
		for len(measured) > 0 && measured[0] < e.measureFrom {
			measured = measured[1:]
		}
		w.Seq, w.N, w.measuring = int64(first), n, len(measured) > 0
		ws.started += int64(len(measured))
		if len(ws.byStage) > 0 {
			e.countByStage(ws, measured)
		}
		sent := now
		ws.busy.Store(true)
		if track {
			ws.inFlight.Store(int32(n))
		}
		err := e.op(ctx, w)
		ws.busy.Store(false)
		ws.ended.Add(1)
		now = e.now()
		if track {
			ws.inFlight.Store(0)
		}
		if len(measured) == 0 {
			continue
		}
		failed, class, skip := e.classify(err, int64(len(measured)))
		if !skip {
			ws.rec.recordEach(measured, sent, now, failed, class)
			if failed > 0 {
				ws.samples.note(class, err, now)
			}
		}
	}
}

// sleep waits d on the worker's Go timer; false when the run was aborted
// meanwhile. It is the engine's own pacing, not impl.Sleep: it reuses the
// worker's one timer (nothing is allocated per operation) and also wakes on
// the run's abort, which is not a context.
//
// Go timers are precise to tens of microseconds while the process is busy,
// but an idle process wakes them with a 1 ms granularity (the netpoller's
// epoll time-out is in milliseconds): at low rates an operation may start
// up to about 1 ms after its due time, and its latency from the intended
// start includes that slack, as wrk2's does (its timers are in
// milliseconds too). Sleeping the last stretch in nanosleep instead was
// measured: ten times more precise at 2000/s, but it costs a thread
// hand-off per operation, which doubled the engine's CPU and raised every
// latency at 20000/s.
func (ws *workerState) sleep(e *engine, d time.Duration) bool {
	ws.timer.Reset(d)
	select {
	case <-ws.timer.C:
		return true
	case <-e.abort:
	case <-e.runCtx.Done():
	}
	ws.timer.Stop()
	return false
}

// supervise adds open-loop workers while the schedule runs ahead of them:
// when the next slot to claim is due more than growLag ago and every
// worker is in a call, it adds workers (unless the last workers it added
// did not raise the rate at which slots were claimed: then it holds for
// growHold; nor while the generator's threads wait for a CPU: it is
// starved, not short of workers) for the slots waiting (at most an eighth
// more at a time, at most MaxWorkers in all). It returns when the
// schedule is done or the run stops.
func (e *engine) supervise() {
	t := time.NewTicker(growEvery)
	defer t.Stop()
	// The rate at which calls ended over the last window, how many
	// workers were active at its start, and whether workers were added
	// during it.
	var lastAt, holdUntil, lastWait time.Duration
	var lastNext int64
	var lastRate float64
	grew, before := false, int(e.active.Load())
	lastWait = runWaitProbe()
	for {
		select {
		case <-e.runCtx.Done():
			return
		case <-t.C:
		}
		if e.done.Load() || e.stop.Load() {
			return
		}
		if now := e.now(); now-lastAt >= growWindow {
			// The rate at which calls end: what more workers must raise
			// (the rate of claims rises with every worker added, each
			// claiming a late slot at once, whether or not it helps).
			next := e.endedCalls()
			rate := float64(next-lastNext) / (now - lastAt).Seconds()
			// Workers up by a share x should raise the rate by at least
			// x·growGain (and by 2 % at least, above the noise).
			added := float64(int(e.active.Load())-before) / float64(max(before, 1))
			// Threads of the generator that waited for a CPU a quarter of
			// the window: the machine's other work starves it, and a
			// worker "in a call" may only be waiting to be scheduled.
			wait := runWaitProbe()
			starved := wait-lastWait >= (now-lastAt)*time.Duration(runtime.GOMAXPROCS(0))/4
			lastWait = wait
			if starved {
				holdUntil = max(holdUntil, now+growWindow)
			}
			if grew && (starved || rate < lastRate*(1+max(added*growGain, 0.02))) {
				// The workers let in during the window did not raise the
				// rate: park them again, and hold.
				e.active.Store(int32(before))
				holdUntil = now + growHold
				if now >= e.measureFrom {
					e.saturated.Store(true)
				}
			}
			lastAt, lastNext, lastRate, grew = now, next, rate, false
			before = int(e.active.Load())
		}
		if e.now() < holdUntil {
			continue
		}
		running := int(e.active.Load())
		behind := e.behind()
		if behind <= 0 {
			continue
		}
		if at, ok := due(e.cfg.Pacer, e.next.Load()); !ok || e.now()-at < growLag {
			continue
		}
		// Late slots with a worker free mean the generator itself did not
		// get the CPU to claim them (a busy machine): more workers would
		// only add to its load. Grow only when every worker is in a call.
		if !e.allBusy(running) {
			continue
		}
		if running >= len(e.workers) {
			if e.now() >= e.measureFrom {
				e.ceiling.Store(true)
			}
			continue
		}
		add := min(int(min(behind, math.MaxInt32)), max(1, running/8), len(e.workers)-running,
			max(before+int(growStep*float64(before)), before+1)-running)
		if add <= 0 {
			continue
		}
		grew = grew || add > 0
		// Let parked workers in first, then build new ones.
		e.active.Store(int32(running + add))
		e.wakeParked()
		for int(e.nWorkers.Load()) < running+add {
			ws, ok := e.addWorker()
			if !ok {
				break
			}
			e.startWorker(ws)
		}
	}
}

// endedCalls returns the calls the open loop's workers have ended.
func (e *engine) endedCalls() int64 {
	var n int64
	for _, ws := range e.workers[:e.nWorkers.Load()] {
		n += ws.ended.Load()
	}
	return n
}

// wakeParked wakes the parked workers to look at active, done and stop
// again.
func (e *engine) wakeParked() {
	next := make(chan struct{})
	if old := e.wake.Swap(&next); old != nil {
		close(*old)
	}
}

// finish marks the schedule done and wakes the parked workers to leave.
func (e *engine) finish() {
	e.done.Store(true)
	e.wakeParked()
}

// runWaitProbe reads how long the process's threads have waited for a
// CPU (a variable so that a test can take the machine's load out of the
// growth it checks).
var runWaitProbe = processRunWait

// allBusy reports whether each of the first n workers is in a call.
func (e *engine) allBusy(n int) bool {
	for _, ws := range e.workers[:n] {
		if !ws.busy.Load() {
			return false
		}
	}
	return true
}

// behind counts the open loop's slots that are due now but not claimed by
// a worker yet (0 in a closed loop).
func (e *engine) behind() int64 {
	if e.cfg.Pacer == nil || e.start.IsZero() {
		return 0
	}
	next := e.next.Load()
	due := slotsBefore(e.cfg.Pacer, min(e.now(), e.endAt), e.limit)
	if due <= next {
		return 0
	}
	return int64(min(due-next, math.MaxInt64))
}

// dropped counts the measured slots that fell due before the run stopped
// (or its schedule ended) and never started.
func (e *engine) dropped(workers []*workerState) int64 {
	until := e.endAt
	if e.stop.Load() {
		until = min(until, time.Duration(e.stopAt.Load()))
	}
	upper := slotsBefore(e.cfg.Pacer, until, e.limit)
	if upper <= e.firstMeasured {
		return 0
	}
	var started int64
	for _, ws := range workers {
		started += ws.started
	}
	return max(int64(upper-e.firstMeasured)-started, 0)
}

// countByStage adds a call's measured due times to the worker's per-stage
// counts. A worker's due times only grow, so its stage cursor only moves
// forward.
func (e *engine) countByStage(ws *workerState, measured []time.Duration) {
	ends := e.cfg.StageEnds
	for _, d := range measured {
		for ws.stage < len(ends)-1 && d-e.measureFrom >= ends[ws.stage] {
			ws.stage++
		}
		ws.byStage[ws.stage]++
	}
}

// stageDue fills each stage's due and dropped operations (open loop): the
// slots of the schedule that fell due in the stage, up to where the run
// stopped, less the ones the workers started.
func (e *engine) stageDue(stages []StageStats, workers []*workerState) {
	until := e.endAt
	if e.stop.Load() {
		until = min(until, time.Duration(e.stopAt.Load()))
	}
	for i := range stages {
		s := &stages[i]
		from := slotsBefore(e.cfg.Pacer, e.measureFrom+s.Start, e.limit)
		to := slotsBefore(e.cfg.Pacer, min(e.measureFrom+s.End, until), e.limit)
		if i == len(e.cfg.StageEnds)-1 {
			// The last stage takes whatever fell due after the last end.
			to = slotsBefore(e.cfg.Pacer, until, e.limit)
		}
		if to <= from {
			continue
		}
		s.Due = int64(to - from)
		var started int64
		for _, ws := range workers {
			started += ws.byStage[i]
		}
		s.Dropped = max(s.Due-started, 0)
	}
}

func recordDuration(h *hdrhistogram.Histogram, d time.Duration) {
	recordDurationN(h, d, 1)
}

// recordDurationN records n operations of latency d, clamped into the
// histogram's range (so RecordValues cannot fail).
func recordDurationN(h *hdrhistogram.Histogram, d time.Duration, n int64) {
	us := d.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValues(us, n)
}

// String summarises s on one line, for logs and tests.
func (s *Stats) String() string {
	return fmt.Sprintf("ops=%d errors=%d dropped=%d elapsed=%s p50=%dus p99=%dus max=%dus uncorrected p99=%dus max=%dus",
		s.Ops, s.ErrorCount(), s.Dropped, s.Elapsed.Round(time.Millisecond),
		s.Corrected.ValueAtQuantile(50), s.Corrected.ValueAtQuantile(99), s.Corrected.Max(),
		s.Uncorrected.ValueAtQuantile(99), s.Uncorrected.Max())
}
