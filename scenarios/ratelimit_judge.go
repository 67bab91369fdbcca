package scenarios

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// rateLimitTolerance is the documented under-admission tolerance: a user
// is under-admitted when the limiter admitted less than (1 - tolerance) of
// what its own rule admits when replayed over the same requests (the
// server times every decision was taken at). The replay is exact — scripts
// run one at a time, and at one microsecond no admission can follow a
// refusal — so the slack only covers a server clock stepping backwards.
const rateLimitTolerance = 0.01

// limitReadLog returns the times (µs) logged in key, in order.
func limitReadLog(ctx context.Context, admin redis.UniversalClient, key string) ([]int64, error) {
	zs, err := admin.ZRangeWithScores(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit log %s: %w", key, err)
	}
	times := make([]int64, len(zs))
	for i, z := range zs {
		times[i] = int64(z.Score)
	}
	return times, nil
}

// limitAnalysis is what one user's admission log shows.
type limitAnalysis struct {
	admitted   int64 // in the log
	inSpan     int64 // in the measured span of whole aligned periods
	maxSliding int64 // most admissions in any window (t-P, t]
	maxFixed   int64 // most admissions in one aligned window
	violations int64 // admissions that broke the strategy's bound
	excessMax  int64 // most units above the bound at one admission
	nominal    float64
	vsRule     float64 // admitted / the strategy's rule replayed
	vsSliding  float64 // admitted / an exact sliding limit replayed
	// Admissions early by at most the arithmetic's precision
	// (limitFloatSlack), and the most early one (µs).
	slackUsed, slackMax int64
}

// rateLimitAggregate sums the users' analyses.
type rateLimitAggregate struct {
	admitted, maxSliding, maxFixed, violations, excessMax int64
	minVsRule, minNominal                                 float64
	sumNominal, sumVsSliding                              float64
	slackUsed, slackMax                                   int64
}

func (g *rateLimitAggregate) add(a limitAnalysis) {
	g.admitted += a.admitted
	g.maxSliding = max(g.maxSliding, a.maxSliding)
	g.maxFixed = max(g.maxFixed, a.maxFixed)
	g.violations += a.violations
	g.excessMax = max(g.excessMax, a.excessMax)
	g.minVsRule = min(g.minVsRule, a.vsRule)
	g.minNominal = min(g.minNominal, a.nominal)
	g.sumNominal += a.nominal
	g.sumVsSliding += a.vsSliding
	g.slackUsed += a.slackUsed
	g.slackMax = max(g.slackMax, a.slackMax)
}

// limitAllowedInSpan is the most a client asking all the time can be admitted
// in periods whole aligned periods: limit per period, and gcra's burst on
// top of the sustained rate (burst at the start, then one per interval).
func limitAllowedInSpan(strategy string, o impl.LimitOptions, periods int) int64 {
	n := int64(periods) * o.Limit
	if strategy == impl.LimitGCRA {
		n += o.Burst - 1
	}
	return n
}

// limitBoundName says what bound a strategy promises.
func limitBoundName(strategy string) string {
	switch strategy {
	case impl.LimitFixedWindow:
		return "at most limit per aligned window"
	case impl.LimitSlidingWindow:
		return "weighted count prev×(P−elapsed)/P + cur ≤ limit"
	case impl.LimitGCRA:
		return "at most burst + Δt/T in any Δt"
	}
	return "at most limit per sliding window"
}

// limitBoundFigure is the bound as one number: units per window, or the burst
// for gcra.
func limitBoundFigure(strategy string, o impl.LimitOptions) int64 {
	if strategy == impl.LimitGCRA {
		return o.Burst
	}
	return o.Limit
}

func limitBoundInvariant(strategy string, o impl.LimitOptions, g rateLimitAggregate) result.Invariant {
	switch strategy {
	case impl.LimitFixedWindow:
		return Check("no aligned window above the limit", g.violations == 0,
			"at most %d admitted in one aligned %s window (limit %d); %d admissions over", g.maxFixed, o.Period, o.Limit, g.violations)
	case impl.LimitSlidingWindow:
		return Check("weighted count never above the limit", g.violations == 0,
			"prev×(P−elapsed)/P + cur recomputed from the log at every admission: %d over the limit %d (by up to %d)", g.violations, o.Limit, g.excessMax)
	case impl.LimitGCRA:
		inv := Check("GCRA bound holds", g.violations == 0,
			"no interval Δt held more than burst %d + Δt/%s admissions: %d over (by up to %d); at most %d in any %s",
			o.Burst, o.EmissionInterval(), g.violations, g.excessMax, g.maxSliding, o.Period)
		if g.slackUsed > 0 {
			inv.Detail += fmt.Sprintf("; %d admissions came early by at most %dµs, within the limiter's floating-point precision (not counted)", g.slackUsed, g.slackMax)
		}
		return inv
	}
	return Check("no sliding window above the limit", g.violations == 0,
		"at most %d admitted in any window (t−%s, t] (limit %d); %d admissions over", g.maxSliding, o.Period, o.Limit, g.violations)
}

// analyzeLimit judges one user's admission times (µs, sorted) against the
// strategy's bound, counts the admissions in [spanStart, spanEnd), and
// replays the strategy's rule and an exact sliding limit over the
// admissions and the refusals (µs, sorted) to measure under-admission.
//
// A library strategy is judged by the algorithm it documents
// (limitJudgedAs), within the precision of its own arithmetic
// (limitFloatSlack).
func analyzeLimit(strategy string, o impl.LimitOptions, times, refused []int64, spanStart, spanEnd int64) limitAnalysis {
	slack := limitFloatSlack(strategy, len(times))
	strategy = limitJudgedAs(strategy)
	p, l := o.Period.Microseconds(), o.Limit
	a := limitAnalysis{admitted: int64(len(times))}
	// Sliding windows (t-P, t] and aligned windows, two pointers each.
	lo, wStart := 0, 0
	for j, t := range times {
		for times[lo] <= t-p {
			lo++
		}
		inSliding := int64(j - lo + 1)
		a.maxSliding = max(a.maxSliding, inSliding)
		if j > 0 && limitFloorDiv(t, p) != limitFloorDiv(times[j-1], p) {
			wStart = j
		}
		inFixed := int64(j - wStart + 1)
		a.maxFixed = max(a.maxFixed, inFixed)
		if t >= spanStart && t < spanEnd {
			a.inSpan++
		}
		switch strategy {
		case impl.LimitNaive, impl.LimitSlidingLog:
			a.over(inSliding - l)
		case impl.LimitFixedWindow:
			a.over(inFixed - l)
		}
	}
	switch strategy {
	case impl.LimitSlidingWindow:
		a.checkWeighted(times, p, l)
	case impl.LimitGCRA:
		a.checkGCRA(times, o.EmissionInterval().Microseconds(), o.Burst, slack)
	}
	if nominal := limitAllowedInSpan(strategy, o, int((spanEnd-spanStart)/p)); nominal > 0 {
		a.nominal = float64(a.inSpan) / float64(nominal)
	}
	a.vsRule = limitRatio(a.admitted, replayLimit(strategy, o, times, refused))
	a.vsSliding = limitRatio(a.admitted, replayLimit(impl.LimitSlidingLog, o, times, refused))
	return a
}

// limitRatio is a/b, and 1 when both are 0.
func limitRatio(a, b int64) float64 {
	if b == 0 {
		if a == 0 {
			return 1
		}
		return math.Inf(1)
	}
	return float64(a) / float64(b)
}

// replayLimit replays strategy's rule (as its script decides, in the same
// integers) over a user's requests, one unit each: the admissions and the
// refusals, both sorted by the server time they were decided at, the
// admissions first at equal times (as they happened: at one time and
// state, no admission can follow a refusal). It returns how many the rule
// admits. The naive strategy has no rule of its own: it gets 0.
func replayLimit(strategy string, o impl.LimitOptions, admitted, refused []int64) int64 {
	p, l := o.Period.Microseconds(), o.Limit
	var n int64
	var log []int64        // sliding-log: admitted times in the window
	var w, cur, prev int64 // fixed-window and sliding-window
	w = math.MinInt64
	var tat int64 // gcra
	interval := o.EmissionInterval().Microseconds()
	i, j := 0, 0
	for i < len(admitted) || j < len(refused) {
		var t int64
		if j >= len(refused) || (i < len(admitted) && admitted[i] <= refused[j]) {
			t = admitted[i]
			i++
		} else {
			t = refused[j]
			j++
		}
		ok := false
		switch strategy {
		case impl.LimitFixedWindow:
			if tw := limitFloorDiv(t, p); tw != w {
				w, cur = tw, 0
			}
			if ok = cur+1 <= l; ok {
				cur++
			}
		case impl.LimitSlidingLog:
			k := 0
			for k < len(log) && log[k] <= t-p {
				k++
			}
			log = log[k:]
			if ok = int64(len(log))+1 <= l; ok {
				log = append(log, t)
			}
		case impl.LimitSlidingWindow:
			tw := limitFloorDiv(t, p)
			switch {
			case w == math.MinInt64 || w < tw-1:
				cur, prev = 0, 0
			case w == tw-1:
				prev, cur = cur, 0
			}
			w = max(w, tw)
			if ok = prev*(p-(t-tw*p))+(cur+1)*p <= l*p; ok {
				cur++
			}
		case impl.LimitGCRA:
			at := max(tat, t)
			if ok = at+interval-o.Burst*interval <= t; ok {
				tat = at + interval
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// over records an admission excess units above the bound, if positive.
func (a *limitAnalysis) over(excess int64) {
	if excess > 0 {
		a.violations++
		a.excessMax = max(a.excessMax, excess)
	}
}

// checkWeighted recomputes the sliding-window counter's test at every
// admission: prev*(P-elapsed) + cur*P <= limit*P, prev the previous
// aligned window's admissions, cur this window's so far (this one
// included). Admissions at the same microsecond are checked with the
// count after the last of them, which is what the last one saw.
func (a *limitAnalysis) checkWeighted(times []int64, p, l int64) {
	perWindow := map[int64]int64{}
	for _, t := range times {
		perWindow[limitFloorDiv(t, p)]++
	}
	cur := int64(0)
	for j, t := range times {
		w := limitFloorDiv(t, p)
		if j == 0 || limitFloorDiv(times[j-1], p) != w {
			cur = 0
		}
		cur++
		used := perWindow[w-1]*(p-(t-w*p)) + cur*p
		if used > l*p {
			a.over((used - l*p + p - 1) / p)
		}
	}
}

// checkGCRA checks the GCRA bound on every pair of admissions: from the
// i-th to the j-th (sorted) at most burst + (t_j - t_i)/T, that is
// (j*T - t_j) - (i*T - t_i) <= (burst-1)*T. It keeps the smallest
// i*T - t_i seen so far.
//
// An admission early by at most slack µs is within the limiter's own
// arithmetic (limitFloatSlack): it is counted in a.slackUsed, not as a
// violation.
func (a *limitAnalysis) checkGCRA(times []int64, interval, burst, slack int64) {
	best := int64(math.MaxInt64)
	for j, t := range times {
		v := int64(j)*interval - t
		best = min(best, v)
		excess := v - best - (burst-1)*interval
		switch {
		case excess > slack:
			a.over((excess + interval - 1) / interval)
		case excess > 0:
			a.slackUsed++
			a.slackMax = max(a.slackMax, excess)
		}
	}
}

// limitFloatSlack is how early (µs) an admission of strategy may come,
// after n admissions of one key, and still be within the precision of the
// strategy's own arithmetic: 0 for paybench's scripts, which work in
// whole microseconds. redis_rate keeps its clock and its theoretical
// arrival time as double-precision seconds since 2017-01-01 (one unit in
// the last place is 2^-24 s, about 0.06 µs, until 2034) and
// advances the TAT by a float addition per admission, each rounding by up
// to half of that: n admissions may drift the TAT by n × 0.03 µs, and the
// script's own reading of TIME rounds by as much once more. The slack is
// that bound rounded up to the microsecond.
func limitFloatSlack(strategy string, n int) int64 {
	if strategy != impl.LimitRedisRate {
		return 0
	}
	const halfULPNanos = 30 // half of 2^-24 s, rounded up, in ns
	return (int64(n+1)*halfULPNanos + 999) / 1000
}

// limitLockouts counts refusals (µs) at which the admissions (µs, sorted)
// in the window (t-P, t] were fewer than the limit: requests a limiter
// true to "limit per period" would have admitted.
func limitLockouts(admitted, refused []int64, p, limit int64) int64 {
	var n int64
	for _, t := range refused {
		lo, _ := slices.BinarySearch(admitted, t-p+1) // first admission > t-p
		hi, _ := slices.BinarySearch(admitted, t+1)
		if int64(hi-lo) < limit {
			n++
		}
	}
	return n
}

// limitFloorDiv is a/b rounded down (b > 0).
func limitFloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// limitFinite maps ±Inf (no users) to 0 for the report.
func limitFinite(f float64) float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return f
}
