package bench

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// The merger swaps every worker's interval histograms hundreds of times
// while they record: no record may be lost or counted twice, and the series
// must add up to the totals.
func TestIntervalSwapsLoseNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pacer Pacer
	}{{"closed", nil}, {"open", ConstantPacer{Rate: 1e6}}} {
		t.Run(tc.name, func(t *testing.T) {
			const requests = 200_000
			st, err := Run(context.Background(), Config{Concurrency: 8, Requests: requests, Interval: time.Millisecond, Pacer: tc.pacer},
				func(ctx context.Context, w *Worker) error {
					if w.Seq%1000 == 0 {
						return errors.New("ERR every thousandth")
					}
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if st.Ops != requests || st.Corrected.TotalCount() != requests || st.Uncorrected.TotalCount() != requests {
				t.Fatalf("ops=%d corrected=%d uncorrected=%d, want %d", st.Ops, st.Corrected.TotalCount(), st.Uncorrected.TotalCount(), requests)
			}
			if st.Errors[impl.ClassRedis] != requests/1000 {
				t.Fatalf("errors %v", st.Errors)
			}
			var ops, errs int64
			for _, p := range st.Series {
				ops += p.Ops
				errs += p.Errors
			}
			if ops != requests || errs != requests/1000 {
				t.Fatalf("series adds up to %d ops and %d errors over %d points", ops, errs, len(st.Series))
			}
			if len(st.Series) < 2 {
				t.Logf("only %d points: the run was faster than two intervals", len(st.Series))
			}
		})
	}
}

// The series has at most one point per interval the merger saw end, plus
// the last one, with the time of each; how many intervals it saw depends
// on how often the machine let it run, so the count has only generous
// bounds.
func TestSeriesHasOnePointPerInterval(t *testing.T) {
	const interval, duration = 100 * time.Millisecond, 550 * time.Millisecond
	var mu sync.Mutex
	var progress []Progress
	st := mustRun(t, context.Background(), Config{Concurrency: 2, Duration: duration, Warmup: 120 * time.Millisecond, Interval: interval,
		Progress: func(p Progress) {
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
		}}, sleepOp(time.Millisecond))
	// The last point closes the window, at its end or later.
	if len(st.Series) == 0 {
		t.Fatal("no points")
	}
	last := st.Series[len(st.Series)-1].T
	if last < (duration - interval/2).Seconds() {
		t.Fatalf("last point at %.3fs, want the end of the 550 ms window", last)
	}
	// Five or six points on an idle machine; fewer when a starved merger
	// missed ticks, never more than one per interval that passed.
	if n := len(st.Series); n < 2 || n > int(last/interval.Seconds())+2 {
		t.Fatalf("%d points for %.3fs at 100 ms: %+v", n, last, st.Series)
	}
	var ops int64
	for i, p := range st.Series {
		if i > 0 && p.T <= st.Series[i-1].T {
			t.Fatalf("time goes back: %+v", st.Series)
		}
		if p.Ops > 0 && (p.P50 <= 0 || p.P99 < p.P50 || p.Max < p.P99) {
			t.Fatalf("point %+v", p)
		}
		ops += p.Ops
	}
	if ops != st.Ops {
		t.Fatalf("the points add up to %d operations, the run has %d", ops, st.Ops)
	}
	mu.Lock()
	defer mu.Unlock()
	var measured int
	for i, p := range progress {
		if p.Warmup {
			if measured > 0 {
				t.Fatalf("warm-up progress after the measured start: %+v", progress)
			}
			continue
		}
		measured++
		if p.Ops > st.Ops || (i > 0 && p.Ops < progress[i-1].Ops) {
			t.Fatalf("progress counts go back or past the total %d: %+v", st.Ops, progress)
		}
	}
	if measured == 0 {
		t.Fatalf("no progress in the measured window: %+v", progress)
	}
}

// A stall shows in the series: the interval it falls in has a p99 as long
// as the stall. The stall is slot 75's call (due at 150 ms) sleeping
// 200 ms, so it falls in the window however slow the machine is.
func TestSeriesShowsAStall(t *testing.T) {
	st := mustRun(t, context.Background(), Config{Concurrency: 1, Duration: 500 * time.Millisecond, Interval: 100 * time.Millisecond, Pacer: ConstantPacer{Rate: 500}},
		func(ctx context.Context, w *Worker) error {
			if w.Seq == 75 {
				return sleepOp(200*time.Millisecond)(ctx, w)
			}
			return nil
		})
	var worst int64
	for _, p := range st.Series {
		worst = max(worst, p.P99)
	}
	if worst < 150_000 {
		t.Fatalf("no interval shows the 200 ms stall: %+v", st.Series)
	}
}

func TestRecordPathsDoNotAllocate(t *testing.T) {
	r := newRecorder(false)
	dues := []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}
	for name, f := range map[string]func(){
		"closed":       func() { r.recordClosed(0, 123*time.Microsecond, 1, 0, "") },
		"closed batch": func() { r.recordClosed(0, 123*time.Microsecond, 16, 0, "") },
		"closed error": func() { r.recordClosed(0, 123*time.Microsecond, 1, 1, impl.ClassTimeout) },
		"open":         func() { r.recordEach(dues[:1], 5*time.Millisecond, 6*time.Millisecond, 0, "") },
		"open batch":   func() { r.recordEach(dues, 5*time.Millisecond, 6*time.Millisecond, 1, impl.ClassRedis) },
		// A class met again after the merger emptied the bucket: the
		// class map keeps its memory across interval swaps.
		"error after a swap": func() {
			r.recordClosed(0, 123*time.Microsecond, 1, 1, impl.ClassConnection)
			r.flip().reset()
		},
	} {
		if allocs := testing.AllocsPerRun(1000, f); allocs != 0 {
			t.Errorf("%s record path allocates %.1f times per call", name, allocs)
		}
	}
	w := &Worker{steps: []*hdrhistogram.Histogram{NewHistogram()}, measuring: true}
	if allocs := testing.AllocsPerRun(1000, func() { w.Observe(0, time.Millisecond) }); allocs != 0 {
		t.Errorf("Observe allocates %.1f times per call", allocs)
	}
}

// BenchmarkRecorder is the per-operation record path of an open loop:
// handshake, corrected and uncorrected histograms.
func BenchmarkRecorder(b *testing.B) {
	r := newRecorder(false)
	dues := []time.Duration{time.Millisecond}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.recordEach(dues, 2*time.Millisecond, time.Duration(i%5000)*time.Microsecond+3*time.Millisecond, 0, "")
	}
}

// BenchmarkRecorderWithMerger is the record path while a merger swaps the
// buckets every millisecond.
func BenchmarkRecorderWithMerger(b *testing.B) {
	r := newRecorder(true)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		agg := newBucket()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				bk := r.flip()
				agg.add(bk, true)
				bk.reset()
			}
		}
	}()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.recordClosed(0, time.Duration(i%5000)*time.Microsecond, 1, 0, "")
	}
	b.StopTimer()
	close(stop)
	<-done
}

func TestFillCopiesTheSeries(t *testing.T) {
	st, err := Run(context.Background(), Config{Concurrency: 2, Duration: 250 * time.Millisecond, Interval: 100 * time.Millisecond, Pacer: ConstantPacer{Rate: 400}}, noop)
	if err != nil {
		t.Fatal(err)
	}
	var c result.Cell
	st.Fill(&c)
	if len(c.Series) != len(st.Series) || len(c.Series) == 0 || c.Dropped != st.Dropped || c.Ops != st.Ops {
		t.Fatalf("cell series %d points (stats %d), dropped %d, ops %d", len(c.Series), len(st.Series), c.Dropped, c.Ops)
	}
	if c.Latency.Corrected.Count != st.Ops || c.Latency.Uncorrected.Count != st.Ops || c.Histograms["uncorrected"] == "" {
		t.Fatalf("latency %+v, histograms %v", c.Latency, len(c.Histograms))
	}
	st.Series[0].Ops = -1
	if c.Series[0].Ops == -1 {
		t.Fatal("Fill shares the series with the stats")
	}
}

// Every interval's failures by class add up to its failures, and the
// intervals' classes add up to the run's, while the merger swaps every
// millisecond under 8 workers.
func TestSeriesErrorsByClassAddUp(t *testing.T) {
	classes := []struct {
		every, at int64
		err       error
		class     string
	}{
		{700, 0, impl.ErrContention, impl.ClassContention},
		{1100, 1, context.DeadlineExceeded, impl.ClassTimeout},
		{1300, 2, errors.New("ERR something"), impl.ClassRedis},
	}
	op := func(ctx context.Context, w *Worker) error {
		for _, c := range classes {
			if w.Seq%c.every == c.at {
				return c.err
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name  string
		pacer Pacer
	}{{"closed", nil}, {"open", ConstantPacer{Rate: 1e6}}} {
		t.Run(tc.name, func(t *testing.T) {
			const requests = 100_000
			st := mustRun(t, context.Background(), Config{Concurrency: 8, Requests: requests, Interval: time.Millisecond, Pacer: tc.pacer}, op)
			byClass := map[string]int64{}
			withErrors := 0
			for _, p := range st.Series {
				var n int64
				for k, v := range p.ErrorsByClass {
					n += v
					byClass[k] += v
				}
				if n != p.Errors {
					t.Fatalf("point %+v: classes add up to %d", p, n)
				}
				if p.Errors > 0 {
					withErrors++
				}
			}
			for _, c := range classes {
				if st.Errors[c.class] == 0 || byClass[c.class] != st.Errors[c.class] {
					t.Errorf("%s: the series counts %d, the run %d", c.class, byClass[c.class], st.Errors[c.class])
				}
			}
			if len(byClass) != len(st.Errors) {
				t.Errorf("series classes %v, run classes %v", byClass, st.Errors)
			}
			if withErrors == 0 {
				t.Fatal("no point carries errors")
			}
		})
	}
}

// With an Origin, the series starts SeriesStart after it: after the run
// was called plus the warm-up, before it returned; Fill copies it in
// seconds. Without one it is 0.
func TestSeriesStartFromOrigin(t *testing.T) {
	const warmup = 50 * time.Millisecond
	for _, tc := range []struct {
		name   string
		origin time.Duration // before the call to Run (-1: none)
	}{{"no origin", -1}, {"origin at the call", 0}, {"origin earlier", 300 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			called := time.Now()
			var origin time.Time
			if tc.origin >= 0 {
				origin = called.Add(-tc.origin)
			}
			st := mustRun(t, context.Background(), Config{Concurrency: 2, Duration: 100 * time.Millisecond, Warmup: warmup, Interval: 50 * time.Millisecond, Origin: origin}, noop)
			returned := time.Since(origin)
			var c result.Cell
			st.Fill(&c)
			if c.SeriesStart != st.SeriesStart.Seconds() {
				t.Errorf("cell series_start_s %v, stats %s", c.SeriesStart, st.SeriesStart)
			}
			if origin.IsZero() {
				if st.SeriesStart != 0 {
					t.Fatalf("SeriesStart %s without an origin", st.SeriesStart)
				}
				return
			}
			if st.SeriesStart < tc.origin+warmup || st.SeriesStart > returned {
				t.Fatalf("SeriesStart %s: want at least %s (origin to the call, plus the warm-up) and at most %s (origin to the return)",
					st.SeriesStart, tc.origin+warmup, returned)
			}
		})
	}
}
