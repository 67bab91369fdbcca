package bench

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

func TestRunFixedCountCoversEverySequenceOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		concurrency int
		requests    int64
	}{
		{"one worker", 1, 10},
		{"even split", 4, 100},
		{"uneven split", 7, 100},
		{"more workers than requests", 16, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[int64]int{}
			st, err := Run(context.Background(), Config{Concurrency: tc.concurrency, Requests: tc.requests}, func(ctx context.Context, w *Worker) error {
				mu.Lock()
				seen[w.Seq]++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if st.Ops != tc.requests || int64(len(seen)) != tc.requests {
				t.Fatalf("ops=%d distinct seq=%d, want %d", st.Ops, len(seen), tc.requests)
			}
			for seq := int64(0); seq < tc.requests; seq++ {
				if seen[seq] != 1 {
					t.Fatalf("seq %d ran %d times", seq, seen[seq])
				}
			}
			if st.Corrected.TotalCount() != tc.requests || st.Uncorrected.TotalCount() != tc.requests {
				t.Fatalf("histogram counts %d/%d", st.Corrected.TotalCount(), st.Uncorrected.TotalCount())
			}
		})
	}
}

func TestRunCountsErrorsByClass(t *testing.T) {
	st, err := Run(context.Background(), Config{Concurrency: 3, Requests: 30}, func(ctx context.Context, w *Worker) error {
		switch w.Seq % 3 {
		case 0:
			return fmt.Errorf("deduct: %w", impl.ErrContention)
		case 1:
			return context.DeadlineExceeded
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Errors[impl.ClassContention] != 10 || st.Errors[impl.ClassTimeout] != 10 || st.ErrorCount() != 20 {
		t.Fatalf("errors = %v", st.Errors)
	}
}

// A duration-bound closed loop: the measured window is exactly the
// duration, however long the calls in flight at its end take to finish.
func TestRunStopsAfterDuration(t *testing.T) {
	const duration = 300 * time.Millisecond
	st := mustRun(t, context.Background(), Config{Concurrency: 4, Duration: duration}, func(ctx context.Context, w *Worker) error {
		time.Sleep(time.Millisecond)
		return nil
	})
	if st.Elapsed != duration {
		t.Errorf("elapsed %s, want the %s duration exactly", st.Elapsed, duration)
	}
	if st.Ops == 0 || st.Interrupted || st.Capped {
		t.Fatalf("ops=%d interrupted=%v capped=%v", st.Ops, st.Interrupted, st.Capped)
	}
}

// The interrupt comes from a call, so it falls inside the run however
// slow the machine is.
func TestRunInterruptedByContext(t *testing.T) {
	const concurrency, cancelAt = 2, 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := mustRun(t, ctx, Config{Concurrency: concurrency, Requests: 1 << 40}, func(ctx context.Context, w *Worker) error {
		if w.Seq == cancelAt {
			cancel()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	})
	// Worker 0 made calls 0, 2, ..., 18 before it made call 20 and
	// interrupted the run: those and call 20 count, the calls cut short by
	// the cancellation do not.
	if !st.Interrupted || st.Ops < cancelAt/concurrency+1 || st.ErrorCount() != 0 {
		t.Fatalf("%s interrupted=%v", st, st.Interrupted)
	}
}

func TestRunRejectsUnboundedConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Requests: -1}, {Duration: -time.Second}} {
		if _, err := Run(context.Background(), cfg, func(context.Context, *Worker) error { return nil }); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestStepsAreRecordedSeparately(t *testing.T) {
	st, err := Run(context.Background(), Config{Concurrency: 2, Requests: 10, Steps: []string{"a", "b"}}, func(ctx context.Context, w *Worker) error {
		w.Observe(0, 2*time.Millisecond)
		if w.Seq%2 == 0 {
			w.Observe(1, 5*time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps["a"].TotalCount() != 10 || st.Steps["b"].TotalCount() != 5 {
		t.Fatalf("steps a=%d b=%d", st.Steps["a"].TotalCount(), st.Steps["b"].TotalCount())
	}
	if p := st.Steps["b"].ValueAtQuantile(50); p < 4990 || p > 5010 {
		t.Fatalf("step b p50 = %dus", p)
	}
}

// BenchmarkRecordPath measures the per-operation record path: it must not
// allocate.
func BenchmarkRecordPath(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		recordDuration(h, time.Duration(i%5000)*time.Microsecond)
	}
}

// BenchmarkEngineNoop drives a no-op operation in a closed loop with one
// worker: ns/op is the engine's own overhead per operation (one clock read,
// one record), ops/s its ceiling per worker, and cpu-ns/op the process's
// CPU time per operation (merger included), which other load on the
// machine does not inflate as it does wall time.
func BenchmarkEngineNoop(b *testing.B) {
	benchEngine(b, Config{Concurrency: 1, Requests: int64(b.N)})
}

// BenchmarkEngineNoopParallel is the same with one worker per CPU.
func BenchmarkEngineNoopParallel(b *testing.B) {
	benchEngine(b, Config{Concurrency: runtime.GOMAXPROCS(0), Requests: int64(b.N)})
}

// BenchmarkEngineOpenNoop drives a no-op operation in an open loop whose
// slots are always due (1e9/s): the overhead of claiming a slot, computing
// its due time and recording both latencies.
func BenchmarkEngineOpenNoop(b *testing.B) {
	benchEngine(b, Config{Concurrency: 1, Requests: int64(b.N), Pacer: ConstantPacer{Rate: 1e9}})
}

// BenchmarkOpenLoopRate drives a no-op operation at 2000/s with 8 workers
// for b.N operations: how close to the rate the engine gets (ops/s,
// against 2000) and how late the slots start (late-p99-us, the corrected
// p99 of an operation that takes no time). These are the figures the
// tests cannot assert on a busy machine; compare runs with benchstat.
func BenchmarkOpenLoopRate(b *testing.B) {
	const rate = 2000
	st, err := Run(context.Background(), Config{Concurrency: 8, Requests: int64(b.N), Pacer: ConstantPacer{Rate: rate}}, noop)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(st.Throughput(), "ops/s")
	b.ReportMetric(float64(st.Corrected.ValueAtQuantile(99)), "late-p99-us")
}

func benchEngine(b *testing.B, cfg Config) {
	b.ReportAllocs()
	cpu0 := cpuTime()
	st, err := Run(context.Background(), cfg, func(context.Context, *Worker) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(st.Throughput(), "ops/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestRecordPathDoesNotAllocate(t *testing.T) {
	h := NewHistogram()
	allocs := testing.AllocsPerRun(1000, func() { recordDuration(h, 123*time.Microsecond) })
	if allocs != 0 {
		t.Fatalf("record path allocates %.1f times per op", allocs)
	}
}

func TestInTimedOpMarksEveryCallOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"closed loop with warm-up", Config{Concurrency: 3, Duration: 60 * time.Millisecond, Warmup: 20 * time.Millisecond}},
		{"closed loop count", Config{Concurrency: 4, Requests: 200}},
		{"open loop", Config{Concurrency: 2, Requests: 100, Pacer: ConstantPacer{Rate: 5000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if InTimedOp(ctx) {
				t.Fatal("the caller's context is marked")
			}
			var calls, unmarked, childUnmarked atomic.Int64
			_, err := Run(ctx, tc.cfg, func(ctx context.Context, w *Worker) error {
				calls.Add(1)
				if !InTimedOp(ctx) {
					unmarked.Add(1)
				}
				// What the call derives (time-outs, goroutines) is still
				// inside it.
				child, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if !InTimedOp(child) {
					childUnmarked.Add(1)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if calls.Load() == 0 || unmarked.Load() != 0 || childUnmarked.Load() != 0 {
				t.Fatalf("%d calls: %d unmarked, %d derived contexts unmarked", calls.Load(), unmarked.Load(), childUnmarked.Load())
			}
			if InTimedOp(context.WithoutCancel(ctx)) {
				t.Fatal("a context derived from the caller's is marked")
			}
		})
	}
}

// TestFirstWorkersBeginTogether: when the first call of a run begins,
// every one of the first Concurrency workers is already running (a
// worker started early cannot make a sale alone while the others are
// still being created). The workers are counted in a dump of every
// goroutine's stack, so other goroutines of the test binary do not count.
func TestFirstWorkersBeginTogether(t *testing.T) {
	workers := func() int {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				return strings.Count(string(buf[:n]), "bench.(*engine).startWorker.func")
			}
			buf = make([]byte, 2*len(buf))
		}
	}
	for _, conc := range []int{2, 16, 64} {
		t.Run(fmt.Sprint(conc), func(t *testing.T) {
			var first atomic.Bool
			atFirst := -1
			_, err := Run(context.Background(), Config{Concurrency: conc, Requests: int64(conc) * 5}, func(ctx context.Context, w *Worker) error {
				if first.CompareAndSwap(false, true) {
					atFirst = workers()
				}
				time.Sleep(time.Millisecond)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// No worker can have left before the first call (each makes 5).
			if atFirst != conc {
				t.Errorf("workers running at the first call: %d, want %d", atFirst, conc)
			}
		})
	}
}
