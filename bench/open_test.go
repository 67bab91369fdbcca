package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

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

// The pacer's rate is a correctness property: an open loop with idle
// workers runs every slot of its window, none dropped. The bounds are
// generous for a busy 2-core machine; README gives the measured figure.
func TestOpenLoopAchievesTheRate(t *testing.T) {
	st, err := Run(context.Background(), Config{Concurrency: 8, Duration: time.Second, Pacer: ConstantPacer{Rate: 2000}}, noop)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(st)
	if st.Ops+st.Dropped != 2000 || st.Dropped > 100 {
		t.Fatalf("ops=%d dropped=%d, want the 2000 slots of the window run", st.Ops, st.Dropped)
	}
	if st.Elapsed != time.Second {
		t.Fatalf("elapsed %s, want the 1 s window", st.Elapsed)
	}
	if r := st.Throughput(); r < 1900 || r > 2010 {
		t.Fatalf("throughput %.0f/s, want about 2000/s", r)
	}
}

func TestOpenLoopFixedCountRunsExactlyItsSlots(t *testing.T) {
	var mu sync.Mutex
	seen := map[int64]int{}
	st, err := Run(context.Background(), Config{Concurrency: 4, Requests: 300, Pacer: ConstantPacer{Rate: 20000}, Batch: 7},
		func(ctx context.Context, w *Worker) error {
			mu.Lock()
			defer mu.Unlock()
			for i := range w.N {
				seen[w.Seq+int64(i)]++
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
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
// actual send hardly does (only the calls in flight waited).
func TestOpenLoopCorrectsCoordinatedOmission(t *testing.T) {
	var stallStart atomic.Int64
	stallEnd := make(chan struct{})
	start := time.Now()
	time.AfterFunc(300*time.Millisecond, func() {
		stallStart.Store(1)
		time.AfterFunc(400*time.Millisecond, func() { close(stallEnd) })
	})
	op := func(ctx context.Context, w *Worker) error {
		if stallStart.Load() == 1 {
			select {
			case <-stallEnd:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	st, err := Run(context.Background(), Config{Concurrency: 2, Duration: 1200 * time.Millisecond, Pacer: ConstantPacer{Rate: 1000}}, op)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (took %s)", st, time.Since(start))
	c99, u99 := st.Corrected.ValueAtQuantile(99), st.Uncorrected.ValueAtQuantile(99)
	if c99 < 200_000 {
		t.Errorf("corrected p99 %dµs does not show the 400 ms stall", c99)
	}
	if u99 > c99/4 {
		t.Errorf("uncorrected p99 %dµs is not far below the corrected %dµs", u99, c99)
	}
	if st.Uncorrected.Max() < 200_000 {
		t.Errorf("uncorrected max %dµs: the calls in flight during the stall should show it", st.Uncorrected.Max())
	}
	if st.Ops+st.Dropped != 1200 || st.Dropped > 60 {
		t.Errorf("ops=%d dropped=%d: the two workers catch up after the stall", st.Ops, st.Dropped)
	}
}

func TestOpenLoopGrowsWorkersWhenBusy(t *testing.T) {
	// 10 ms calls at 500/s need about 5 workers; it starts with 1.
	st, err := Run(context.Background(), Config{Concurrency: 1, MaxWorkers: 64, Duration: 600 * time.Millisecond, Pacer: ConstantPacer{Rate: 500}}, sleepOp(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(st, "workers", st.Workers)
	if st.Workers < 4 || st.Workers > 64 {
		t.Fatalf("grew to %d workers, want at least 4", st.Workers)
	}
	if st.Ops < 250 {
		t.Fatalf("ops=%d dropped=%d: growing should serve most of 300 slots", st.Ops, st.Dropped)
	}
}

func TestOpenLoopCountsDroppedWhenItCannotKeepUp(t *testing.T) {
	// One worker, 20 ms calls, 200/s for 500 ms: about 25 of 100 slots run.
	st, err := Run(context.Background(), Config{Concurrency: 1, Duration: 500 * time.Millisecond, Pacer: ConstantPacer{Rate: 200}}, sleepOp(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(st)
	if st.Workers != 1 {
		t.Fatalf("workers=%d without MaxWorkers", st.Workers)
	}
	if st.Dropped < 40 || st.Ops+st.Dropped != 100 {
		t.Fatalf("ops=%d dropped=%d, want ops+dropped == 100 slots and most dropped", st.Ops, st.Dropped)
	}
	// The late slots that did run waited: corrected latency shows it.
	if c, u := st.Corrected.Max(), st.Uncorrected.Max(); c < 100_000 || u > c/2 {
		t.Fatalf("corrected max %dµs, uncorrected max %dµs", c, u)
	}
}

func TestWarmupIsNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pacer Pacer
	}{{"closed", nil}, {"open", ConstantPacer{Rate: 1000}}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			st, err := Run(context.Background(), Config{Concurrency: 2, Warmup: 200 * time.Millisecond, Duration: 300 * time.Millisecond, Pacer: tc.pacer, Steps: []string{"s"}},
				func(ctx context.Context, w *Worker) error {
					calls.Add(1)
					w.Observe(0, time.Millisecond)
					time.Sleep(time.Millisecond)
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if st.Ops == 0 || st.Ops >= calls.Load() {
				t.Fatalf("recorded %d of %d calls: the warm-up's must not count", st.Ops, calls.Load())
			}
			if st.Steps["s"].TotalCount() > st.Ops+2 {
				t.Fatalf("step recorded %d, ops %d", st.Steps["s"].TotalCount(), st.Ops)
			}
			if st.Elapsed < 250*time.Millisecond || st.Elapsed > 2*time.Second {
				t.Fatalf("elapsed %s, want the measured window only", st.Elapsed)
			}
			if tc.pacer != nil && (st.Ops+st.Dropped != 300 || st.Dropped > 30) {
				t.Fatalf("ops=%d dropped=%d, want the 300 slots of the window", st.Ops, st.Dropped)
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
	for _, tc := range []struct {
		name  string
		pacer Pacer
	}{{"closed", nil}, {"open", ConstantPacer{Rate: 1000}}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			st, err := Run(context.Background(), Config{Concurrency: 2, Requests: 1 << 40, MaxDuration: 200 * time.Millisecond, Pacer: tc.pacer}, sleepOp(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("took %s", took)
			}
			if !st.Capped || st.Interrupted || st.Ops == 0 {
				t.Fatalf("capped=%v interrupted=%v ops=%d", st.Capped, st.Interrupted, st.Ops)
			}
		})
	}
}

func TestStopIsGracefulButBounded(t *testing.T) {
	// Every call blocks until its context ends: the stop waits StopTimeout
	// for them, then cancels them, and the cancelled calls are not
	// recorded as failures.
	start := time.Now()
	st, err := Run(context.Background(), Config{Concurrency: 3, Duration: 50 * time.Millisecond, StopTimeout: 100 * time.Millisecond},
		func(ctx context.Context, w *Worker) error {
			<-ctx.Done()
			return ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 140*time.Millisecond || took > 3*time.Second {
		t.Fatalf("took %s, want the duration plus the stop time-out", took)
	}
	if st.Ops != 0 || st.ErrorCount() != 0 || st.Interrupted {
		t.Fatalf("%s interrupted=%v", st, st.Interrupted)
	}
	// Calls that end by themselves within the bound are recorded.
	var started atomic.Int64
	st, err = Run(context.Background(), Config{Concurrency: 3, Duration: 50 * time.Millisecond}, func(ctx context.Context, w *Worker) error {
		started.Add(1)
		return sleepOp(80*time.Millisecond)(ctx, w)
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops == 0 || st.Ops != started.Load() || st.ErrorCount() != 0 {
		t.Fatalf("%s: the %d calls in flight at the end should finish and count", st, started.Load())
	}
}

func TestOpenLoopInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	st, err := Run(ctx, Config{Concurrency: 4, Duration: time.Hour, Pacer: ConstantPacer{Rate: 1000}}, sleepOp(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Interrupted || st.Ops == 0 || st.Ops+st.Dropped > 200 || st.Elapsed > time.Second {
		t.Fatalf("%s interrupted=%v", st, st.Interrupted)
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
