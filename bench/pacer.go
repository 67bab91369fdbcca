package bench

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Pacer decides when each operation of an open loop is due. Pace returns,
// for operation number started (0-based, counted from the start of the run,
// warm-up included), the time from elapsed until it is due: negative when
// that moment has passed. stop ends the schedule: no operation numbered
// started or later will be due.
//
// A Pacer computes every due time from the start of the run, never from
// accumulated sleeps, so Pace(elapsed, n) == Pace(0, n) - elapsed and
// drift cannot build up. It must be a pure function of its arguments, safe
// for concurrent use, and its due times must not decrease as started grows.
type Pacer interface {
	Pace(elapsed time.Duration, started uint64) (wait time.Duration, stop bool)
}

// due returns when operation n of p's schedule is due, from the start of
// the run; ok is false past the schedule's end.
func due(p Pacer, n uint64) (at time.Duration, ok bool) {
	w, stop := p.Pace(0, n)
	return w, !stop
}

// slotsBefore returns how many operations of p's schedule are due before t
// (the smallest n whose due time is t or later, or where the schedule
// ends), at most limit.
func slotsBefore(p Pacer, t time.Duration, limit uint64) uint64 {
	before := func(n uint64) bool {
		at, ok := due(p, n)
		return ok && at < t
	}
	if limit == 0 || !before(0) {
		return 0
	}
	// Exponential search for an upper bound, then binary search: lo is
	// always before t, hi never is (or is the limit).
	lo, hi := uint64(0), uint64(1)
	for hi < limit && before(hi) {
		lo = hi
		if hi > limit/2 {
			hi = limit
			break
		}
		hi *= 2
	}
	hi = min(hi, limit)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if before(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	if hi == limit && before(hi-1) {
		return limit
	}
	return hi
}

// ConstantPacer paces Rate operations per second: operation n is due n/Rate
// seconds after the start.
type ConstantPacer struct {
	// Rate is the target in operations per second (> 0).
	Rate float64
}

// Pace implements Pacer.
func (p ConstantPacer) Pace(elapsed time.Duration, started uint64) (time.Duration, bool) {
	if !(p.Rate > 0) {
		return 0, true
	}
	return seconds(float64(started)/p.Rate) - elapsed, false
}

// String returns the rate, such as "2000/s".
func (p ConstantPacer) String() string { return formatRate(p.Rate) + "/s" }

// LinearPacer holds From operations per second for Delay (a warm-up, say),
// then changes the rate linearly to To over Over, then holds To. Operation
// n is due when the integral of the rate since the start reaches n.
type LinearPacer struct {
	// From and To are the rates in operations per second (>= 0, not both 0).
	From, To float64
	// Delay is how long From holds before the ramp starts.
	Delay time.Duration
	// Over is the length of the ramp (> 0).
	Over time.Duration
}

// Pace implements Pacer.
func (p LinearPacer) Pace(elapsed time.Duration, started uint64) (time.Duration, bool) {
	at, ok := p.dueAt(float64(started))
	if !ok {
		return 0, true
	}
	return at - elapsed, false
}

// dueAt inverts the cumulative count: the time at which the integral of the
// rate reaches n.
func (p LinearPacer) dueAt(n float64) (time.Duration, bool) {
	if p.From < 0 || p.To < 0 || p.Over <= 0 {
		return 0, false
	}
	delay, over := p.Delay.Seconds(), p.Over.Seconds()
	// Hold From for Delay.
	held := p.From * delay
	if n < held {
		return seconds(n / p.From), true
	}
	m := n - held
	// The ramp: From*s + a*s²/2 = m, with a = (To-From)/Over. The form
	// 2m / (From + sqrt(From² + 2am)) is the root without cancellation,
	// for rising, falling and flat ramps alike.
	ramped := (p.From + p.To) / 2 * over
	if m < ramped {
		if m == 0 {
			return seconds(delay), true
		}
		a := (p.To - p.From) / over
		disc := max(p.From*p.From+2*a*m, 0)
		s := 2 * m / (p.From + math.Sqrt(disc))
		return seconds(delay + min(s, over)), true
	}
	// Hold To.
	if p.To <= 0 {
		return 0, false
	}
	return seconds(delay + over + (m-ramped)/p.To), true
}

// String returns the ramp, such as "1000/s→5000/s over 10s".
func (p LinearPacer) String() string {
	return fmt.Sprintf("%s/s→%s/s over %s", formatRate(p.From), formatRate(p.To), p.Over)
}

func seconds(s float64) time.Duration {
	const maxSeconds = float64(math.MaxInt64/int64(time.Second)) - 1
	if s > maxSeconds {
		s = maxSeconds
	}
	return time.Duration(s * float64(time.Second))
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

// ErrBadRate is wrapped by ParseRate's errors.
var ErrBadRate = errors.New("bad rate")

// ParseRate parses the --rate syntax: "R" is a constant R operations per
// second; "A:B" a linear ramp from A to B over ramp (which must be > 0),
// holding A for warmup first. Rates may be decimals; a ramp's ends may be
// 0 but not both.
func ParseRate(s string, warmup, ramp time.Duration) (Pacer, error) {
	from, to, isRamp := strings.Cut(strings.TrimSpace(s), ":")
	a, err := parseOneRate(from, isRamp)
	if err != nil {
		return nil, err
	}
	if !isRamp {
		return ConstantPacer{Rate: a}, nil
	}
	b, err := parseOneRate(to, true)
	if err != nil {
		return nil, err
	}
	if a == 0 && b == 0 {
		return nil, fmt.Errorf("%w %q: a ramp needs a non-zero end", ErrBadRate, s)
	}
	if ramp <= 0 {
		return nil, fmt.Errorf("%w %q: a ramp needs a duration to ramp over", ErrBadRate, s)
	}
	return LinearPacer{From: a, To: b, Delay: warmup, Over: ramp}, nil
}

func parseOneRate(s string, zeroOK bool) (float64, error) {
	r, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "/s")), 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w %q: want operations per second, such as 2000 or 1000:5000", ErrBadRate, s)
	case math.IsNaN(r) || math.IsInf(r, 0) || r < 0 || r > 1e9:
		return 0, fmt.Errorf("%w %q: want 0 < rate <= 1e9", ErrBadRate, s)
	case r == 0 && !zeroOK:
		return 0, fmt.Errorf("%w %q: want a rate > 0", ErrBadRate, s)
	}
	return r, nil
}

// Stage is one stage of a StagesPacer: the rate moves linearly from where
// the previous stage left it to Target over Duration (a Duration of 0 jumps
// to Target).
type Stage struct {
	Duration time.Duration
	Target   float64
}

// StagesPacer paces a schedule of stages, as k6's ramping arrival rate
// does: it holds Start (0 unless set) for Delay (the warm-up), then each
// stage ramps linearly from the previous target (Start for the first) to
// its own. The schedule ends with the last stage. Operation n is due when
// the integral of the rate since the start reaches n.
type StagesPacer struct {
	Start  float64
	Delay  time.Duration
	Stages []Stage
}

// Pace implements Pacer. It walks the stages (a handful) without
// allocating: it runs once per operation.
func (p StagesPacer) Pace(elapsed time.Duration, started uint64) (time.Duration, bool) {
	n := float64(started)
	var t time.Duration
	// seg returns the due time within one ramp, or the count it holds.
	seg := func(from, to float64, over time.Duration) (time.Duration, float64, bool) {
		count := (from + to) / 2 * over.Seconds()
		if n < count {
			at, ok := LinearPacer{From: from, To: to, Over: over}.dueAt(n)
			return min(at, over), 0, ok
		}
		return 0, count, false
	}
	if p.Delay > 0 {
		at, count, ok := seg(p.Start, p.Start, p.Delay)
		if ok {
			return t + at - elapsed, false
		}
		n -= count
		t += p.Delay
	}
	from := p.Start
	for _, s := range p.Stages {
		if s.Duration > 0 {
			at, count, ok := seg(from, s.Target, s.Duration)
			if ok {
				return t + at - elapsed, false
			}
			n -= count
			t += s.Duration
		}
		from = s.Target
	}
	return 0, true
}

// Ends returns when each stage ends, from the end of the warm-up (stages of
// no length are left out, as they hold no operation).
func (p StagesPacer) Ends() []time.Duration {
	var ends []time.Duration
	var t time.Duration
	for _, s := range p.Stages {
		if s.Duration > 0 {
			t += s.Duration
			ends = append(ends, t)
		}
	}
	return ends
}

// Total returns the length of the stages, warm-up excluded.
func (p StagesPacer) Total() time.Duration {
	var t time.Duration
	for _, s := range p.Stages {
		t += s.Duration
	}
	return t
}

// Due returns how many operations stage i (an index into Ends) schedules.
func (p StagesPacer) Due(i int) float64 {
	from := p.Start
	k := 0
	for _, s := range p.Stages {
		if s.Duration > 0 {
			if k == i {
				return (from + s.Target) / 2 * s.Duration.Seconds()
			}
			k++
		}
		from = s.Target
	}
	return 0
}

// String returns the stages as ParseStages reads them, such as
// "10s:1000,30s:5000".
func (p StagesPacer) String() string {
	parts := make([]string, len(p.Stages))
	for i, s := range p.Stages {
		parts[i] = s.Duration.String() + ":" + formatRate(s.Target)
	}
	return strings.Join(parts, ",")
}

// MaxStages bounds the number of stages ParseStages accepts.
const MaxStages = 100

// ParseStages parses the --stages syntax: comma-separated DURATION:RATE
// stages, each a linear ramp from the previous stage's rate (0 before the
// first) to RATE over DURATION; "0s:RATE" jumps to RATE. At least one stage
// must have a length and one a non-zero rate.
func ParseStages(s string) (StagesPacer, error) {
	var p StagesPacer
	items := strings.Split(s, ",")
	if strings.TrimSpace(s) == "" || len(items) > MaxStages {
		return p, fmt.Errorf("%w %q: want 1..%d stages DURATION:RATE, such as 10s:1000,30s:5000,10s:0", ErrBadRate, s, MaxStages)
	}
	var total time.Duration
	var peak float64
	for _, item := range items {
		ds, rs, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok {
			return p, fmt.Errorf("%w: stage %q is not DURATION:RATE", ErrBadRate, item)
		}
		d, err := time.ParseDuration(strings.TrimSpace(ds))
		if err != nil || d < 0 {
			return p, fmt.Errorf("%w: stage %q: bad duration %q", ErrBadRate, item, ds)
		}
		r, err := parseOneRate(rs, true)
		if err != nil {
			return p, fmt.Errorf("stage %q: %w", item, err)
		}
		p.Stages = append(p.Stages, Stage{Duration: d, Target: r})
		total += d
		peak = max(peak, r)
		if total > 24*time.Hour {
			return p, fmt.Errorf("%w %q: the stages last more than 24h", ErrBadRate, s)
		}
	}
	if total == 0 || peak == 0 {
		return p, fmt.Errorf("%w %q: the stages need a length and a rate above 0", ErrBadRate, s)
	}
	return p, nil
}
