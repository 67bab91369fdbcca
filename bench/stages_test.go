package bench

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestStagesPacerSchedule(t *testing.T) {
	ramp := StagesPacer{Stages: []Stage{{time.Second, 1000}, {time.Second, 1000}}}
	flat := StagesPacer{Stages: []Stage{{0, 1000}, {2 * time.Second, 1000}}}
	warm := StagesPacer{Start: 100, Delay: time.Second, Stages: []Stage{{0, 1000}, {time.Second, 1000}}}
	down := StagesPacer{Stages: []Stage{{0, 1000}, {time.Second, 0}, {time.Second, 0}, {time.Second, 1000}}}
	for _, tc := range []struct {
		name string
		p    StagesPacer
		n    uint64
		want time.Duration
		stop bool
	}{
		{"ramp start", ramp, 0, 0, false},
		{"ramp: 0→1000 over 1 s holds 500", ramp, 500, time.Second, false},
		{"ramp: half of it by 1/√2 s", ramp, 250, 707106781, false},
		{"hold after the ramp", ramp, 1000, 1500 * time.Millisecond, false},
		{"end of the schedule", ramp, 1500, 0, true},
		{"jump then flat", flat, 1234, 1234 * time.Millisecond, false},
		{"flat ends", flat, 2000, 0, true},
		{"warm-up holds Start", warm, 50, 500 * time.Millisecond, false},
		{"after the warm-up", warm, 100, time.Second, false},
		{"ramp down", down, 375, 500 * time.Millisecond, false},
		{"a stage at 0 schedules nothing", down, 500, 2 * time.Second, false},
		{"ramp up again, to the end", down, 1000, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, stop := tc.p.Pace(0, tc.n)
			if stop != tc.stop || !stop && (at-tc.want).Abs() > time.Microsecond {
				t.Errorf("Pace(0, %d) = %s, %v; want %s, %v", tc.n, at, stop, tc.want, tc.stop)
			}
		})
	}
	if got := down.Ends(); len(got) != 3 || got[2] != 3*time.Second {
		t.Errorf("Ends() = %v", got)
	}
}

func TestParseStages(t *testing.T) {
	p, err := ParseStages("10s:1000, 30s:5000/s,10s:0")
	if err != nil || len(p.Stages) != 3 || p.Total() != 50*time.Second || p.Stages[1].Target != 5000 {
		t.Fatalf("ParseStages = %+v, %v", p, err)
	}
	if p.String() != "10s:1000,30s:5000,10s:0" {
		t.Errorf("String() = %q", p.String())
	}
	for _, bad := range []string{"", "10s", "x:100", "-1s:100", "1s:-5", "1s:abc", "0s:100", "1s:0,2s:0", "25h:10"} {
		if _, err := ParseStages(bad); !errors.Is(err, ErrBadRate) {
			t.Errorf("ParseStages(%q) = %v, want ErrBadRate", bad, err)
		}
	}
}

// Each stage's figures add up to the run's, and each stage's due
// operations are its share of the schedule, whatever the machine's speed.
func TestStagesAccountingAddsUp(t *testing.T) {
	p := StagesPacer{Stages: []Stage{{0, 400}, {500 * time.Millisecond, 400}, {500 * time.Millisecond, 1200}}}
	st := mustRun(t, context.Background(), Config{Concurrency: 2, MaxWorkers: 64, Duration: p.Total(), Pacer: p, StageEnds: p.Ends(), Interval: 200 * time.Millisecond},
		func(ctx context.Context, w *Worker) error {
			if w.Seq%10 == 0 {
				return errors.New("boom")
			}
			return nil
		})
	if len(st.Stages) != 2 {
		t.Fatalf("%d stages, want 2", len(st.Stages))
	}
	var ops, due, dropped, errs int64
	for i, s := range st.Stages {
		ops += s.Ops
		due += s.Due
		dropped += s.Dropped
		errs += s.ErrorCount()
		if want := p.Due(i); math.Abs(float64(s.Due)-want) > 1 {
			t.Errorf("stage %d: due %d, want %.0f", i, s.Due, want)
		}
		if s.Corrected.TotalCount() != s.Ops || s.Uncorrected.TotalCount() != s.Ops {
			t.Errorf("stage %d: histograms hold %d/%d, ops %d", i, s.Corrected.TotalCount(), s.Uncorrected.TotalCount(), s.Ops)
		}
	}
	if st.Stages[0].Start != 0 || st.Stages[0].End != 500*time.Millisecond || st.Stages[1].End != time.Second {
		t.Errorf("stage bounds %s-%s, %s-%s", st.Stages[0].Start, st.Stages[0].End, st.Stages[1].Start, st.Stages[1].End)
	}
	if ops != st.Ops || dropped != st.Dropped || errs != st.ErrorCount() || due != st.Ops+st.Dropped {
		t.Errorf("stages: ops %d dropped %d errors %d due %d; run: ops %d dropped %d errors %d", ops, dropped, errs, due, st.Ops, st.Dropped, st.ErrorCount())
	}
}

func TestShards(t *testing.T) {
	for _, bad := range []string{"", "1", "2/2", "-1/2", "0/0", "a/b", "0/10001"} {
		if _, err := ParseShard(bad); !errors.Is(err, ErrBadShard) {
			t.Errorf("ParseShard(%q) = %v, want ErrBadShard", bad, err)
		}
	}
	full := StagesPacer{Stages: []Stage{{time.Second, 3000}, {time.Second, 1000}}}
	// Three shards together run exactly the full schedule: every slot of
	// it, each once.
	seen := map[time.Duration]int{}
	var total uint64
	for i := range 3 {
		s, err := ParseShard(strconv.Itoa(i) + "/3")
		if err != nil {
			t.Fatal(err)
		}
		p := s.Pacer(full)
		for n := uint64(0); ; n++ {
			at, stop := p.Pace(0, n)
			if stop {
				break
			}
			want, _ := full.Pace(0, n*3+uint64(i))
			if at != want {
				t.Fatalf("shard %d slot %d due %s, full schedule's slot says %s", i, n, at, want)
			}
			seen[at]++
			total++
		}
		if got, want := s.Requests(10), []int64{4, 3, 3}[i]; got != want {
			t.Errorf("shard %d: Requests(10) = %d, want %d", i, got, want)
		}
		if got := s.Keys(2); got != 1 {
			t.Errorf("shard %d: Keys(2) = %d, want 1", i, got)
		}
	}
	if n := slotsBefore(full, time.Hour, 1<<40); total != n {
		t.Errorf("shards ran %d slots, the full schedule has %d", total, n)
	}
}

// An open loop that falls behind with every worker of its ceiling busy
// says so; one that keeps up does not.
func TestOpenLoopReportsItsWorkerCeiling(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers int
		want    bool
	}{{"ceiling of 2 for 100 in flight", 2, true}, {"room to grow", 400, false}} {
		t.Run(tc.name, func(t *testing.T) {
			st := mustRun(t, context.Background(), Config{Concurrency: 1, MaxWorkers: tc.workers, Duration: 300 * time.Millisecond,
				Pacer: ConstantPacer{Rate: 1000}}, sleepOp(100*time.Millisecond))
			if st.CeilingReached != tc.want {
				t.Errorf("CeilingReached %v, want %v (workers %d)", st.CeilingReached, tc.want, st.Workers)
			}
			if tc.want && st.Dropped == 0 {
				t.Error("two workers of 100 ms ran 300 operations due in 300 ms")
			}
			if st.Wall <= 0 || st.CPU < 0 || st.RunWait < 0 {
				t.Errorf("wall %s cpu %s run wait %s", st.Wall, st.CPU, st.RunWait)
			}
		})
	}
}

// A generator whose threads wait for a CPU (a busy machine, simulated) adds
// no workers for good: the ones it added are parked again, and the run
// says it was saturated.
func TestOpenLoopHoldsWhenStarved(t *testing.T) {
	probe := runWaitProbe
	t0 := time.Now()
	runWaitProbe = func() time.Duration { return 10 * time.Since(t0) } // waiting 10 times the wall time
	t.Cleanup(func() { runWaitProbe = probe })
	var inFlight, most atomic.Int64
	st := mustRun(t, context.Background(), Config{Concurrency: 1, MaxWorkers: 64, Duration: 600 * time.Millisecond, Pacer: ConstantPacer{Rate: 100}},
		func(ctx context.Context, w *Worker) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			return sleepOp(200*time.Millisecond)(ctx, w)
		})
	if !st.Saturated {
		t.Error("not saturated")
	}
	// Growth is possible only in the first 100 ms window, by a quarter.
	if m := most.Load(); m > 2 {
		t.Errorf("%d calls in flight at once, want at most 2", m)
	}
}
