package bench

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Monitor hears a run's figures while it runs (Config.Monitor), so that
// they can be exported live — as Prometheus metrics, say — without the
// engine knowing how. The engine calls Interval from its merger goroutine
// once per Config.Interval of the measured window and once more for the
// last, shorter interval, never concurrently with itself; nothing is
// called during the warm-up. The run's final figures are still the
// Stats that Run returns.
type Monitor interface {
	// Interval receives what the interval that just closed measured. Its
	// histograms belong to the engine: read them during the call only.
	Interval(iv Interval)
}

// Interval is one interval's figures, handed to a Monitor.
type Interval struct {
	// Corrected holds the latencies of the interval's operations from
	// their intended start, Uncorrected from their send, in microseconds
	// (equal in a closed loop).
	Corrected, Uncorrected *hdrhistogram.Histogram
	// Errors counts the interval's failed operations by class (read it
	// during the call only).
	Errors map[string]int64
	// Scheduled counts the operations an open loop's schedule made due in
	// the interval (0 in a closed loop): its rate is the target rate.
	Scheduled int64
	// Workers is the number of workers running at the interval's end.
	Workers int
	// InFlight counts the operations started and not yet ended at the
	// interval's end.
	InFlight int64
	// Behind counts the open loop's operations that were due at the
	// interval's end but not started yet (0 in a closed loop). They may
	// still run, late; the ones that never do are Stats.Dropped.
	Behind int64
}

// monitorInterval hands the interval the merger just collected, ending
// at now (since the run's start), to the run's Monitor.
func (m *merger) monitorInterval(now time.Duration) {
	e := m.e
	mon := e.cfg.Monitor
	if mon == nil {
		return
	}
	var dueUntil uint64
	if e.cfg.Pacer != nil {
		dueUntil = slotsBefore(e.cfg.Pacer, min(now, e.endAt), e.limit)
	}
	var inFlight int64
	for _, ws := range e.workers[:int(e.nWorkers.Load())] {
		inFlight += int64(ws.inFlight.Load())
	}
	var scheduled int64
	if e.cfg.Pacer != nil && dueUntil > max(m.lastDue, e.firstMeasured) {
		scheduled = int64(dueUntil - max(m.lastDue, e.firstMeasured))
		m.lastDue = dueUntil
	}
	mon.Interval(Interval{
		Corrected:   m.interval.corrected,
		Uncorrected: m.interval.uncorrected,
		Errors:      m.interval.errs,
		Scheduled:   scheduled,
		Workers:     int(e.nWorkers.Load()),
		InFlight:    inFlight,
		Behind:      e.behind(),
	})
}
