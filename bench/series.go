package bench

import (
	"runtime"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/reports/result"
)

// A bucket holds what a stretch of operations measured: latency from the
// intended start (corrected) and from the actual send (uncorrected), and
// the failures by class. A worker's buckets are swapped at interval ends
// with its histograms, so each point of the series gets its failures by
// class without the record path doing more than counting into the
// active bucket's map (which keeps its memory across resets: a class
// seen before costs no allocation).
type bucket struct {
	corrected, uncorrected *hdrhistogram.Histogram
	errors                 int64
	errs                   map[string]int64
}

func newBucket() bucket {
	return bucket{corrected: NewHistogram(), uncorrected: NewHistogram(), errs: map[string]int64{}}
}

// newClosedBucket returns a bucket for a closed-loop worker, which records
// into corrected only: its uncorrected histogram is nil.
func newClosedBucket() bucket {
	return bucket{corrected: NewHistogram(), errs: map[string]int64{}}
}

// add merges o into b. A closed loop records into o.corrected only (its
// latencies are the same both ways): closed says to take it for both.
func (b *bucket) add(o *bucket, closed bool) {
	if o.corrected.TotalCount() > 0 {
		b.corrected.Merge(o.corrected)
		if closed {
			b.uncorrected.Merge(o.corrected)
		}
	}
	if o.uncorrected != nil && o.uncorrected.TotalCount() > 0 {
		b.uncorrected.Merge(o.uncorrected)
	}
	b.errors += o.errors
	for k, v := range o.errs {
		b.errs[k] += v
	}
}

// reset empties b, keeping its memory.
func (b *bucket) reset() {
	if b.corrected.TotalCount() > 0 {
		b.corrected.Reset()
	}
	if b.uncorrected != nil && b.uncorrected.TotalCount() > 0 {
		b.uncorrected.Reset()
	}
	b.errors = 0
	clear(b.errs)
}

// recorder is a worker's pair of interval buckets. The worker records into
// the active one; once per interval the merger makes the other one active
// and, after a handshake, reads and empties the one the worker left. The
// worker's side is two atomic stores and two atomic loads per record, no
// lock and no allocation; the merger's side waits only while a record is in
// progress, which never blocks.
//
// The handshake is Dekker's: the worker announces the bucket it is about to
// write (writing = i+1) and then checks that i is still active; the merger
// switches active and then waits until writing no longer names the old
// bucket. Go's atomics are sequentially consistent, so either the worker
// sees the switch and moves to the new bucket, or the merger sees the
// announcement and waits for the record to end.
type recorder struct {
	bufs    [2]bucket
	active  atomic.Uint32 // written by the merger: the bucket to record into
	writing atomic.Uint32 // written by the worker: 0, or 1 + the bucket being written
}

// newRecorder returns an empty recorder; a closed loop's buckets hold no
// uncorrected histogram (about 140 kB each saved per worker).
func newRecorder(closed bool) recorder {
	if closed {
		return recorder{bufs: [2]bucket{newClosedBucket(), newClosedBucket()}}
	}
	return recorder{bufs: [2]bucket{newBucket(), newBucket()}}
}

// enter starts a record and returns the bucket to write; exit must follow.
func (r *recorder) enter() *bucket {
	for {
		i := r.active.Load()
		r.writing.Store(i + 1)
		if r.active.Load() == i {
			return &r.bufs[i&1]
		}
	}
}

// exit ends the record enter started.
func (r *recorder) exit() { r.writing.Store(0) }

// flip makes the other bucket active and returns the one the worker left,
// once no record is writing it. Only the merger calls flip.
func (r *recorder) flip() *bucket {
	old := r.active.Load()
	r.active.Store(old ^ 1)
	for r.writing.Load() == old+1 {
		runtime.Gosched()
	}
	return &r.bufs[old&1]
}

// recordClosed adds n operations of a closed-loop call that began at begin
// and ended at end; failed of them failed with class. The intended start is
// the actual one, so only the corrected histogram is written (the merger
// takes it for both).
func (r *recorder) recordClosed(begin, end time.Duration, n, failed int64, class string) {
	b := r.enter()
	recordDurationN(b.corrected, end-begin, n)
	if failed > 0 {
		b.errors += failed
		b.errs[class] += failed
	}
	r.exit()
}

// recordEach adds one operation per intended start in dues (each measured
// from its own due time), all sent at sent and ended at end; failed of them
// failed with class.
func (r *recorder) recordEach(dues []time.Duration, sent, end time.Duration, failed int64, class string) {
	b := r.enter()
	for _, d := range dues {
		recordDuration(b.corrected, end-d)
	}
	recordDurationN(b.uncorrected, end-sent, int64(len(dues)))
	if failed > 0 {
		b.errors += failed
		b.errs[class] += failed
	}
	r.exit()
}

// Progress is what the engine reports once per interval while it runs.
type Progress struct {
	// Warmup is true while the warm-up runs (nothing is recorded yet).
	Warmup bool
	// Elapsed is the time since the start of the measured window (since the
	// start of the warm-up while Warmup is true).
	Elapsed time.Duration
	// Ops and Errors count the measured operations so far.
	Ops, Errors int64
	// Last is the latest interval's point (zero during warm-up).
	Last result.Point
	// Rate is the latest interval's operations per second.
	Rate float64
	// Workers is the number of workers running.
	Workers int
	// Behind counts open-loop operations that are due but not started yet.
	Behind int64
}

// merger owns the run-wide measurements: once per interval it takes every
// worker's interval bucket, turns it into a point of the series and adds it
// to the totals.
type merger struct {
	e        *engine
	interval bucket // this interval, all workers
	total    bucket // the measured window so far
	series   []result.Point
	lastT    time.Duration
	lastDue  uint64 // the open loop's slots due before the last interval's end (Monitor)

	// With stages (Config.StageEnds): the workers' buckets are gathered
	// into fresh, which adds to both the interval and the current stage.
	fresh, stage bucket
	stages       []StageStats // the stages closed so far
}

func newMerger(e *engine) *merger {
	m := &merger{e: e, interval: newBucket(), total: newBucket()}
	if len(e.cfg.StageEnds) > 0 {
		m.fresh, m.stage = newBucket(), newBucket()
	}
	return m
}

// gather takes every worker's bucket: into the interval, and with stages
// into the current stage too.
func (m *merger) gather() {
	n := int(m.e.nWorkers.Load())
	closed := m.e.cfg.Pacer == nil
	into := &m.interval
	if m.fresh.corrected != nil {
		into = &m.fresh
	}
	for _, ws := range m.e.workers[:n] {
		b := ws.rec.flip()
		into.add(b, closed)
		b.reset()
	}
	if m.fresh.corrected != nil {
		m.interval.add(&m.fresh, false)
		m.stage.add(&m.fresh, false)
		m.fresh.reset()
	}
}

// closeStage ends the current stage at end (from the start of the measured
// window) with what was gathered into it.
func (m *merger) closeStage(end time.Duration) {
	ends := m.e.cfg.StageEnds
	i := len(m.stages)
	if i >= len(ends) {
		return
	}
	s := StageStats{End: min(end, ends[i]), Corrected: NewHistogram(), Uncorrected: NewHistogram(), Errors: map[string]int64{}}
	if i == len(ends)-1 {
		s.End = end // the last stage ends with the window
	}
	if i > 0 {
		s.Start = ends[i-1]
	}
	s.Corrected.Merge(m.stage.corrected)
	s.Uncorrected.Merge(m.stage.uncorrected)
	s.Ops = s.Corrected.TotalCount()
	for k, v := range m.stage.errs {
		s.Errors[k] = v
	}
	m.stage.reset()
	m.stages = append(m.stages, s)
}

// closeStages closes, at the end of the run, every stage the window
// reached, the window having closed at end (from its start).
func (m *merger) closeStages(end time.Duration) {
	if m.fresh.corrected == nil {
		return
	}
	m.gather()
	ends := m.e.cfg.StageEnds
	for len(m.stages) < len(ends) {
		i := len(m.stages)
		if i > 0 && ends[i-1] >= end {
			break // the run stopped before this stage began
		}
		m.closeStage(end)
	}
}

// collect closes the interval ending at now (since the run's start): it
// takes every worker's bucket and appends a point.
func (m *merger) collect(now time.Duration) result.Point {
	m.gather()
	t := max(now-m.e.measureFrom, 0)
	iv := m.interval.corrected
	p := result.Point{
		T:      roundSeconds(t),
		Ops:    iv.TotalCount(),
		Errors: m.interval.errors,
	}
	if p.Ops > 0 {
		v := iv.ValueAtPercentilesSlice([]float64{50, 99})
		p.P50, p.P99, p.Max = v[0], v[1], iv.Max()
	}
	if p.Errors > 0 {
		// The workers' per-class counts of the interval, merged above:
		// the point gets its own copy (the merger's map is reused).
		p.ErrorsByClass = make(map[string]int64, len(m.interval.errs))
		for k, v := range m.interval.errs {
			p.ErrorsByClass[k] = v
		}
	}
	// A last interval that measured nothing (the run ended right after a
	// tick) adds no point.
	if p.Ops > 0 || p.Errors > 0 || t-m.lastT >= m.e.cfg.Interval/2 {
		m.series = append(m.series, p)
	}
	m.lastT = t
	m.monitorInterval(now)
	m.total.add(&m.interval, false)
	m.interval.reset()
	return p
}

// loop collects once per interval from the measured start until done is
// closed; the caller collects the last interval itself after the workers
// ended.
func (m *merger) loop(done <-chan struct{}) {
	e := m.e
	progress := e.cfg.Progress
	// The warm-up: nothing to collect, progress only.
	if wait := e.measureFrom - e.now(); wait > 0 {
		tick := time.NewTicker(min(e.cfg.Interval, wait))
		defer tick.Stop()
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
	warmup:
		for {
			select {
			case <-done:
				return
			case <-deadline.C:
				break warmup
			case <-tick.C:
				if progress != nil {
					progress(Progress{Warmup: true, Elapsed: e.now(), Workers: int(e.nWorkers.Load()), Behind: e.behind()})
				}
			}
		}
	}
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	// Stage boundaries before the last (the last ends with the window,
	// which Run closes itself).
	var stageC <-chan time.Time
	ends := e.cfg.StageEnds
	next := 0
	arm := func() {}
	if len(ends) > 1 {
		st := time.NewTimer(time.Hour)
		defer st.Stop()
		arm = func() {
			if next < len(ends)-1 {
				st.Reset(max(e.measureFrom+ends[next]-e.now(), 0))
				stageC = st.C
			} else {
				stageC = nil
			}
		}
		arm()
	}
	for {
		select {
		case <-done:
			return
		case <-stageC:
			m.gather()
			m.closeStage(ends[next])
			next++
			arm()
		case <-tick.C:
			p := m.collect(e.now())
			if progress != nil {
				progress(Progress{
					Elapsed: e.now() - e.measureFrom,
					Ops:     m.total.corrected.TotalCount(),
					Errors:  m.total.errors,
					Last:    p,
					Rate:    float64(p.Ops) / e.cfg.Interval.Seconds(),
					Workers: int(e.nWorkers.Load()),
					Behind:  e.behind(),
				})
			}
		}
	}
}

func roundSeconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}
