package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

// tallyMonitor adds up what a Monitor hears.
type tallyMonitor struct {
	calls              int
	corrected, uncorr  int64
	errors             map[string]int64
	scheduled          int64
	maxInFlight        int64
	maxWorkers, behind int
}

func (m *tallyMonitor) Interval(iv Interval) {
	m.calls++
	m.corrected += iv.Corrected.TotalCount()
	m.uncorr += iv.Uncorrected.TotalCount()
	if m.errors == nil {
		m.errors = map[string]int64{}
	}
	for k, v := range iv.Errors {
		m.errors[k] += v
	}
	m.scheduled += iv.Scheduled
	m.maxInFlight = max(m.maxInFlight, iv.InFlight)
	m.maxWorkers = max(m.maxWorkers, iv.Workers)
}

// TestMonitorAddsUp: what a Monitor hears, interval by interval, adds up
// to the run's final figures — operations, errors by class, and for an
// open loop the schedule (run + dropped) — and its in-flight count never
// exceeds the workers.
//
// Not parallel: mustRun checks that no goroutine outlives each run.
func TestMonitorAddsUp(t *testing.T) {
	errBoom := errors.New("boom")
	failing := func(ctx context.Context, w *Worker) error {
		if w.Seq%10 == 0 {
			return errBoom
		}
		return nil
	}
	sleeping := func(ctx context.Context, w *Worker) error {
		time.Sleep(2 * time.Millisecond)
		return failing(ctx, w)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		op   Op
	}{
		{"closed loop, count", Config{Concurrency: 4, Requests: 3000}, sleeping},
		{"closed loop, warm-up and duration", Config{Concurrency: 3, Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond}, sleeping},
		{"open loop", Config{Concurrency: 2, MaxWorkers: 8, Duration: 500 * time.Millisecond, Pacer: ConstantPacer{Rate: 2000}}, sleeping},
		{"open loop, batches", Config{Concurrency: 2, Duration: 400 * time.Millisecond, Batch: 4, Pacer: ConstantPacer{Rate: 4000}}, failing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mon := &tallyMonitor{}
			cfg := tc.cfg
			cfg.Monitor = mon
			cfg.Interval = 50 * time.Millisecond
			cfg.Classify = func(error) string { return "boom" }
			st := mustRun(t, t.Context(), cfg, tc.op)
			if mon.calls == 0 {
				t.Fatal("the monitor heard nothing")
			}
			if mon.corrected != st.Ops || mon.uncorr != st.Ops {
				t.Errorf("monitor heard %d corrected, %d uncorrected operations; the run measured %d", mon.corrected, mon.uncorr, st.Ops)
			}
			if mon.errors["boom"] != st.Errors["boom"] || st.Errors["boom"] == 0 {
				t.Errorf("monitor heard %d errors, the run counted %d", mon.errors["boom"], st.Errors["boom"])
			}
			if cfg.Pacer != nil {
				if mon.scheduled != st.Ops+st.Dropped {
					t.Errorf("monitor heard %d operations scheduled; the run ran %d and dropped %d", mon.scheduled, st.Ops, st.Dropped)
				}
			} else if mon.scheduled != 0 {
				t.Errorf("closed loop: %d scheduled", mon.scheduled)
			}
			if mon.maxInFlight > int64(st.Workers*max(cfg.Batch, 1)) || mon.maxWorkers > st.Workers {
				t.Errorf("in flight %d, workers %d: above the %d workers that ran", mon.maxInFlight, mon.maxWorkers, st.Workers)
			}
		})
	}
}

// TestMonitorSeesInFlight: operations that block are seen in flight.
func TestMonitorSeesInFlight(t *testing.T) {
	mon := &tallyMonitor{}
	block := func(ctx context.Context, w *Worker) error {
		time.Sleep(30 * time.Millisecond)
		return nil
	}
	mustRun(t, t.Context(), Config{Concurrency: 3, Duration: 300 * time.Millisecond, Interval: 20 * time.Millisecond, Monitor: mon}, block)
	if mon.maxInFlight < 1 || mon.maxInFlight > 3 {
		t.Errorf("most in flight %d, want 1..3 (three workers, each asleep most of the time)", mon.maxInFlight)
	}
}

// nopMonitor hears intervals and does nothing.
type nopMonitor struct{}

func (nopMonitor) Interval(Interval) {}

// BenchmarkEngineNoopMonitored is BenchmarkEngineNoop with a Monitor: the
// cost of the in-flight count per operation (two atomic stores) and of a
// monitor call per interval; compare with BenchmarkEngineNoop.
func BenchmarkEngineNoopMonitored(b *testing.B) {
	benchEngine(b, Config{Concurrency: 1, Requests: int64(b.N), Monitor: nopMonitor{}})
}
