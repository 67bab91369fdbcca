package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"go.uber.org/goleak"

	"github.com/paybench/paybench/impl"
)

// No test of this package asserts how fast the engine runs or how close to
// a rate it gets: on a busy machine (the race detector, other test
// binaries, two cores) any such bound fails sooner or later. The tests
// check what holds at any speed: the schedule's arithmetic, exact
// accounting identities (run + dropped == the window's slots, the window
// is exactly the duration), and lower bounds on time (a timer never fires
// early, a sleep never ends early). Upper bounds on wall-clock time are
// only hang guards, far above what the run takes. The achieved rate and
// the engine's overhead are measured by the benchmarks
// (BenchmarkOpenLoopRate, BenchmarkEngineNoop, ...).

// runBound is the hang guard of mustRun: far above what any run of these
// tests takes, even on a starved machine.
const runBound = 2 * time.Minute

// mustRun runs op with cfg and fails the test on an error, when Run has
// not returned within runBound, or when a goroutine Run started outlives
// it.
func mustRun(t *testing.T, ctx context.Context, cfg Config, op Op) *Stats {
	t.Helper()
	before := goleak.IgnoreCurrent()
	type ran struct {
		st  *Stats
		err error
	}
	done := make(chan ran, 1)
	go func() {
		st, err := Run(ctx, cfg, op)
		done <- ran{st, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Log(r.st)
		goleak.VerifyNone(t, before)
		return r.st
	case <-time.After(runBound):
		t.Fatalf("Run(%+v) did not return within %s", cfg, runBound)
		return nil
	}
}

// countAtLeast returns how many values of h are at least v.
func countAtLeast(h *hdrhistogram.Histogram, v int64) int64 {
	var n int64
	for _, b := range h.Distribution() {
		if b.To >= v {
			n += b.Count
		}
	}
	return n
}

// noop is an operation that does nothing.
func noop(context.Context, *Worker) error { return nil }

// sleepOp sleeps d, or less when ctx ends.
func sleepOp(d time.Duration) Op {
	return func(ctx context.Context, w *Worker) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
}

// The open loop keeps the pacer's schedule, at a rate far below what any
// machine keeps up with: every slot of the window is either run or counted
// as dropped, no operation starts before its slot is due (so the rate is
// never exceeded), and the window is exactly the duration. How close to a
// high rate the engine gets is BenchmarkOpenLoopRate's to measure.
func TestOpenLoopKeepsTheSchedule(t *testing.T) {
	const rate, slots = 50, 50 // one second
	p := ConstantPacer{Rate: rate}
	var early atomic.Int64
	t0 := time.Now() // before Run: the run's clock starts later
	st := mustRun(t, context.Background(), Config{Concurrency: 8, Duration: time.Second, Pacer: p},
		func(ctx context.Context, w *Worker) error {
			if at, _ := due(p, uint64(w.Seq)); time.Since(t0) < at {
				early.Add(1)
			}
			return nil
		})
	if st.Ops+st.Dropped != slots {
		t.Errorf("ops=%d dropped=%d, want the window's %d slots run or dropped", st.Ops, st.Dropped, slots)
	}
	if st.Elapsed != time.Second {
		t.Errorf("elapsed %s, want the 1 s window exactly", st.Elapsed)
	}
	if n := early.Load(); n != 0 {
		t.Errorf("%d operations started before their slot was due", n)
	}
	if r := st.Throughput(); r > rate {
		t.Errorf("throughput %.1f/s above the %d/s schedule", r, rate)
	}
	// Eight idle workers claim slots 160 ms ahead of the schedule: dropping
	// half the slots takes a generator frozen for most of the window.
	if st.Dropped > slots/2 {
		t.Errorf("dropped %d of %d slots at %d/s", st.Dropped, slots, rate)
	}
}

func TestOpenLoopFixedCountRunsExactlyItsSlots(t *testing.T) {
	var mu sync.Mutex
	seen := map[int64]int{}
	st := mustRun(t, context.Background(), Config{Concurrency: 4, Requests: 300, Pacer: ConstantPacer{Rate: 20000}, Batch: 7},
		func(ctx context.Context, w *Worker) error {
			mu.Lock()
			defer mu.Unlock()
			for i := range w.N {
				seen[w.Seq+int64(i)]++
			}
			return nil
		})
	if st.Ops != 300 || len(seen) != 300 || st.Dropped != 0 {
		t.Fatalf("ops=%d distinct=%d dropped=%d", st.Ops, len(seen), st.Dropped)
	}
	for seq := range int64(300) {
		if seen[seq] != 1 {
			t.Fatalf("slot %d ran %d times", seq, seen[seq])
		}
	}
}

// A stall inside the operation: latency from the intended start shows it
// (the slots that fell due during the stall waited), latency from the
// actual send hardly does (only the calls in flight waited). The stall is
// the two slots due at 300 ms sleeping 400 ms each, one per worker: the
// slots due between them and 700 ms wait at least until then, however
// fast or slow the machine.
func TestOpenLoopCorrectsCoordinatedOmission(t *testing.T) {
	const (
		rate  = 500
		slots = 500 // one second
		stall = 400 * time.Millisecond
	)
	stallFirst := int64(300 * time.Millisecond / (time.Second / rate))
	st := mustRun(t, context.Background(), Config{Concurrency: 2, Duration: time.Second, Pacer: ConstantPacer{Rate: rate}},
		func(ctx context.Context, w *Worker) error {
			if w.Seq == stallFirst || w.Seq == stallFirst+1 {
				return sleepOp(stall)(ctx, w)
			}
			return nil
		})
	if st.Ops+st.Dropped != slots {
		t.Errorf("ops=%d dropped=%d, want the window's %d slots run or dropped", st.Ops, st.Dropped, slots)
	}
	// The slots due in the first 100 ms of the stall (about 50) wait more
	// than 300 ms; p99 is about the fifth-worst.
	if c99 := st.Corrected.ValueAtQuantile(99); c99 < 200_000 {
		t.Errorf("corrected p99 %dµs does not show the 400 ms stall", c99)
	}
	if m := st.Uncorrected.Max(); m < 350_000 {
		t.Errorf("uncorrected max %dµs: the two calls that stalled took 400 ms", m)
	}
	// Only the two stalled calls took long from their send: the
	// uncorrected histogram hides the stall.
	const long = 300_000
	corr, unc := countAtLeast(st.Corrected, long), countAtLeast(st.Uncorrected, long)
	if corr < 20 || unc < 2 || unc > corr/4 {
		t.Errorf("operations of 300 ms or more: %d corrected, %d uncorrected; want many, and few (the 2 stalled)", corr, unc)
	}
}

// 200 ms calls at 100/s need about 20 workers (Little's law); the loop
// starts with one and must add some. No bound on the rate achieved. The
// machine's own load is taken out (the engine adds no workers while the
// generator waits for a CPU, which a busy test machine makes it do).
func TestOpenLoopGrowsWorkersWhenBusy(t *testing.T) {
	probe := runWaitProbe
	runWaitProbe = func() time.Duration { return 0 }
	t.Cleanup(func() { runWaitProbe = probe })
	st := mustRun(t, context.Background(), Config{Concurrency: 1, MaxWorkers: 64, Duration: time.Second, Pacer: ConstantPacer{Rate: 100}},
		sleepOp(200*time.Millisecond))
	t.Log("workers", st.Workers)
	if st.Workers < 4 || st.Workers > 64 {
		t.Errorf("grew to %d workers, want at least 4 and at most MaxWorkers", st.Workers)
	}
	if st.Ops+st.Dropped != 100 {
		t.Errorf("ops=%d dropped=%d, want the window's 100 slots run or dropped", st.Ops, st.Dropped)
	}
}

// One worker, 100 ms calls, 100/s for 500 ms: the worker runs the slots in
// order, each at least 100 ms after the last, so only a handful of the 50
// slots run before the window closes, and each one that ran late shows its
// wait in the corrected latency.
func TestOpenLoopCountsDroppedWhenItCannotKeepUp(t *testing.T) {
	const call = 100 * time.Millisecond
	st := mustRun(t, context.Background(), Config{Concurrency: 1, Duration: 500 * time.Millisecond, Pacer: ConstantPacer{Rate: 100}},
		sleepOp(call))
	if st.Workers != 1 {
		t.Fatalf("workers=%d without MaxWorkers", st.Workers)
	}
	if st.Ops+st.Dropped != 50 {
		t.Fatalf("ops=%d dropped=%d, want ops+dropped == the window's 50 slots", st.Ops, st.Dropped)
	}
	// About 6 run; 25 would take a stop two seconds late.
	if st.Dropped < 25 {
		t.Errorf("dropped %d of 50 slots with one 100 ms worker", st.Dropped)
	}
	// Slot k (due at k*10 ms) started at least k*100 ms in: the last one
	// that ran waited (Ops-1)*90 ms before its 100 ms call.
	want := (time.Duration(st.Ops-1)*90*time.Millisecond + call).Microseconds()
	if c := st.Corrected.Max(); st.Ops > 0 && c < want*99/100 {
		t.Errorf("corrected max %dµs, want at least %dµs for %d slots run by one worker", c, want, st.Ops)
	}
	if u := st.Uncorrected.Max(); st.Ops > 0 && u < call.Microseconds()*99/100 {
		t.Errorf("uncorrected max %dµs below the call's 100 ms", u)
	}
}

func TestWarmupIsNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pacer Pacer
	}{{"closed", nil}, {"open", ConstantPacer{Rate: 100}}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			st := mustRun(t, context.Background(), Config{Concurrency: 2, Warmup: 200 * time.Millisecond, Duration: 300 * time.Millisecond, Pacer: tc.pacer, Steps: []string{"s"}},
				func(ctx context.Context, w *Worker) error {
					calls.Add(1)
					w.Observe(0, time.Millisecond)
					time.Sleep(time.Millisecond)
					return nil
				})
			if st.Ops == 0 || st.Ops >= calls.Load() {
				t.Fatalf("recorded %d of %d calls: the warm-up's must not count", st.Ops, calls.Load())
			}
			if st.Steps["s"].TotalCount() > st.Ops+2 {
				t.Fatalf("step recorded %d, ops %d", st.Steps["s"].TotalCount(), st.Ops)
			}
			if st.Elapsed != 300*time.Millisecond || st.Warmup != 200*time.Millisecond {
				t.Fatalf("elapsed %s after a %s warm-up, want the 300 ms window exactly", st.Elapsed, st.Warmup)
			}
			if tc.pacer != nil && (st.Ops+st.Dropped != 30 || st.Dropped > 15) {
				t.Fatalf("ops=%d dropped=%d, want the 30 slots of the window", st.Ops, st.Dropped)
			}
		})
	}
}

func TestFixedCountWithWarmupKeepsSequencesUnique(t *testing.T) {
	var mu sync.Mutex
	seen := map[int64]int{}
	const requests = 500
	st, err := Run(context.Background(), Config{Concurrency: 3, Requests: requests, Warmup: 200 * time.Millisecond},
		func(ctx context.Context, w *Worker) error {
			time.Sleep(100 * time.Microsecond)
			mu.Lock()
			seen[w.Seq]++
			mu.Unlock()
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != requests {
		t.Fatalf("ops=%d, want %d measured", st.Ops, requests)
	}
	for seq, n := range seen {
		if n != 1 {
			t.Fatalf("seq %d ran %d times", seq, n)
		}
	}
	for seq := range int64(requests) {
		if seen[seq] != 1 {
			t.Fatalf("measured seq %d ran %d times", seq, seen[seq])
		}
	}
	if len(seen) <= requests {
		t.Fatalf("no warm-up call ran (%d calls)", len(seen))
	}
}

func TestClosedLoopBatches(t *testing.T) {
	var mu sync.Mutex
	seen := map[int64]int{}
	var sizes []int
	st, err := Run(context.Background(), Config{Concurrency: 3, Requests: 100, Batch: 16}, func(ctx context.Context, w *Worker) error {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, w.N)
		for i := range w.N {
			seen[w.Seq+int64(i)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != 100 || len(seen) != 100 || len(sizes) != 7 {
		t.Fatalf("ops=%d distinct=%d calls=%d (%v)", st.Ops, len(seen), len(sizes), sizes)
	}
	short := 0
	for _, n := range sizes {
		if n != 16 {
			short++
			if n != 4 {
				t.Fatalf("a call of %d operations (%v)", n, sizes)
			}
		}
	}
	if short != 1 {
		t.Fatalf("call sizes %v, want six of 16 and one of 4", sizes)
	}
}

// batchErr says how many of a batch's operations failed.
type batchErr struct{ failed int }

func (e batchErr) Error() string    { return "ERR some failed" }
func (e batchErr) FailedCount() int { return e.failed }

func TestBatchErrorsCountFailedOperations(t *testing.T) {
	st, err := Run(context.Background(), Config{Concurrency: 2, Requests: 40, Batch: 10}, func(ctx context.Context, w *Worker) error {
		if w.Seq%20 == 0 {
			return batchErr{failed: 3}
		}
		return errors.New("ERR whole batch")
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != 40 || st.Errors[impl.ClassRedis] != 2*3+2*10 {
		t.Fatalf("ops=%d errors=%v", st.Ops, st.Errors)
	}
}

func TestHardCapStopsACountThatNeverEnds(t *testing.T) {
	const maxDuration = 200 * time.Millisecond
	for _, tc := range []struct {
		name  string
		pacer Pacer
	}{{"closed", nil}, {"open", ConstantPacer{Rate: 1000}}} {
		t.Run(tc.name, func(t *testing.T) {
			st := mustRun(t, context.Background(), Config{Concurrency: 2, Requests: 1 << 40, MaxDuration: maxDuration, Pacer: tc.pacer}, sleepOp(time.Millisecond))
			if !st.Capped || st.Interrupted || st.Ops == 0 {
				t.Fatalf("capped=%v interrupted=%v ops=%d", st.Capped, st.Interrupted, st.Ops)
			}
			if st.Elapsed < maxDuration {
				t.Fatalf("elapsed %s, capped before the %s cap", st.Elapsed, maxDuration)
			}
		})
	}
}

func TestStopIsGracefulButBounded(t *testing.T) {
	// Every call blocks until its context ends: the stop waits StopTimeout
	// for them, then cancels them (else Run would never return), and the
	// cancelled calls are not recorded as failures.
	const duration, stopTimeout = 50 * time.Millisecond, 100 * time.Millisecond
	start := time.Now()
	st := mustRun(t, context.Background(), Config{Concurrency: 3, Duration: duration, StopTimeout: stopTimeout},
		func(ctx context.Context, w *Worker) error {
			<-ctx.Done()
			return ctx.Err()
		})
	if took := time.Since(start); took < duration+stopTimeout {
		t.Fatalf("took %s, want at least the duration plus the stop time-out", took)
	}
	if st.Ops != 0 || st.ErrorCount() != 0 || st.Interrupted {
		t.Fatalf("%s interrupted=%v", st, st.Interrupted)
	}
	// Calls that end by themselves within the bound are recorded.
	var started atomic.Int64
	st = mustRun(t, context.Background(), Config{Concurrency: 3, Duration: duration}, func(ctx context.Context, w *Worker) error {
		started.Add(1)
		return sleepOp(80*time.Millisecond)(ctx, w)
	})
	if st.Ops == 0 || st.Ops != started.Load() || st.ErrorCount() != 0 {
		t.Fatalf("%s: the %d calls in flight at the end should finish and count", st, started.Load())
	}
}

// The interrupt comes from the operation itself, after a number of calls,
// so that it falls inside the run however slow the machine is.
func TestOpenLoopInterrupted(t *testing.T) {
	const rate, concurrency, cancelAt = 1000, 4, 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := mustRun(t, ctx, Config{Concurrency: concurrency, Duration: time.Hour, Pacer: ConstantPacer{Rate: rate}},
		func(ctx context.Context, w *Worker) error {
			if w.Seq == cancelAt {
				cancel()
			}
			return nil
		})
	// The call that interrupted returned nil: it counts. (Slots claimed
	// before it may be given up when their worker wakes after the
	// interrupt.)
	if !st.Interrupted || st.Ops == 0 {
		t.Fatalf("%s interrupted=%v", st, st.Interrupted)
	}
	// The window closed at the interrupt: it holds the slots due before it
	// (run or dropped), and at most one call per worker more that started
	// as the interrupt came.
	if slots := int64(st.Elapsed.Seconds()*rate) + 1; st.Ops+st.Dropped > slots+concurrency {
		t.Fatalf("ops=%d dropped=%d in a %s window at %d/s (%d slots due)", st.Ops, st.Dropped, st.Elapsed, rate, slots)
	}
	if at, _ := due(ConstantPacer{Rate: rate}, cancelAt); st.Elapsed < at {
		t.Fatalf("elapsed %s, before slot %d was due at %s", st.Elapsed, cancelAt, at)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Duration: time.Second, Warmup: -1},
		{Duration: time.Second, MaxWorkers: 4, Concurrency: 2},                                // growth without a pacer
		{Duration: time.Second, MaxWorkers: 2, Concurrency: 4, Pacer: ConstantPacer{Rate: 1}}, // fewer than concurrency
		{Duration: time.Second, Batch: -1},
		{Duration: time.Second, Concurrency: -3},
		{Requests: 5, MaxDuration: -time.Second},
	} {
		if _, err := Run(context.Background(), cfg, noop); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
