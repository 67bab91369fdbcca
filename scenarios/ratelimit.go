package scenarios

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newRateLimit() }) }

// rateLimitStartLag is how long after the aligned start the load begins,
// so that a small error in the estimated server clock never starts it
// early, in the window before.
const rateLimitStartLag = time.Millisecond

// RateLimit drives U users, each limited to L units per period P, much
// faster than allowed for several periods, plus one steadily paced client
// at half its limit. Every admission is logged in a sorted set with the
// server time the limiter decided at; the verdict counts that log.
//
// One measured operation is one Limiter.Allow through the backend under
// test, and nothing else. The audit log is the harness's: each worker
// notes its admissions in memory with the decision's server time (the
// limiter's own, Decision.At; for the naive strategy, which reads no
// clock, the local time the answer arrived, mapped onto the server's clock
// read at the start), and the log is written after the run with the admin
// client, in pipelines. It used to be written by an audit script inside
// the timed operation, which stamped naive admissions with the server's
// TIME one round trip after the decision instead.
type RateLimit struct {
	Users   int
	Limit   int64
	Period  time.Duration
	Periods int
	Burst   int64
	Steady  bool
}

func newRateLimit() *RateLimit {
	return &RateLimit{Users: 4, Limit: 10, Period: 250 * time.Millisecond, Periods: 6, Steady: true}
}

// Name implements Scenario.
func (r *RateLimit) Name() string { return "rate-limit" }

// Description implements Scenario.
func (r *RateLimit) Description() string {
	return "users hammer a per-user rate limit; the seed's GET/compare/SETEX over-admits and locks a steady client out"
}

// Strategies implements Scenario.
func (r *RateLimit) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.LimitNaive, Expect: result.Break, Note: "the seed's rate_limit: GET, compare, SETEX (each admission restarts the window)"},
		{Name: impl.LimitFixedWindow, Expect: result.Hold, Note: "INCRBY per clock-aligned window, expiry set when the window starts"},
		{Name: impl.LimitSlidingLog, Expect: result.Hold, Note: "sorted set of admissions, trimmed and counted in one script"},
		{Name: impl.LimitSlidingWindow, Expect: result.Hold, Note: "two-window weighted counter"},
		{Name: impl.LimitGCRA, Expect: result.Hold, Note: "generic cell rate algorithm with burst (redis-cell, redis_rate)"},
		{Name: impl.LimitRedisRate, Expect: result.Hold, Note: "go-redis/redis_rate (go-redis): GCRA, Limit{Rate, Burst, Period}, judged by its own promise burst + rate·t"},
	}
}

// Flags implements Scenario.
func (r *RateLimit) Flags(fs *pflag.FlagSet) {
	fs.IntVar(&r.Users, "users", r.Users, "users hammering the limiter (each has its own limit)")
	fs.Int64Var(&r.Limit, "limit", r.Limit, "units admitted per user per period")
	fs.DurationVar(&r.Period, "period", r.Period, "the limit's period")
	fs.IntVar(&r.Periods, "periods", r.Periods, "periods to run (--duration, when set, wins)")
	fs.Int64Var(&r.Burst, "burst", r.Burst, "gcra only: burst (0: the limit)")
	fs.BoolVar(&r.Steady, "steady", r.Steady, "add a client paced at half its limit, to show lock-outs")
}

// Validate implements Scenario.
func (r *RateLimit) Validate() error {
	switch {
	case r.Users <= 0 || r.Users > 10_000:
		return fmt.Errorf("--users must be 1..10000, got %d", r.Users)
	case r.Limit <= 0 || r.Limit > 100_000:
		return fmt.Errorf("--limit must be 1..100000, got %d", r.Limit)
	case r.Period < 10*time.Millisecond || r.Period > time.Minute || r.Period%time.Microsecond != 0:
		return fmt.Errorf("--period must be 10ms..1m in whole microseconds, got %s", r.Period)
	case r.Periods < 2 || r.Periods > 1000:
		return fmt.Errorf("--periods must be 2..1000, got %d", r.Periods)
	case r.Burst < 0 || r.Burst > impl.MaxLimit:
		return fmt.Errorf("--burst must be 0..%d, got %d", impl.MaxLimit, r.Burst)
	}
	return nil
}

// Params implements Scenario.
func (r *RateLimit) Params() map[string]string {
	return map[string]string{
		"users":   strconv.Itoa(r.Users),
		"limit":   strconv.FormatInt(r.Limit, 10),
		"period":  r.Period.String(),
		"periods": strconv.Itoa(r.Periods),
		"burst":   strconv.FormatInt(r.options(impl.Keyspace{}).Burst, 10),
		"steady":  strconv.FormatBool(r.Steady),
	}
}

func (r *RateLimit) options(ks impl.Keyspace) impl.LimitOptions {
	return impl.LimitOptions{Keys: ks, Limit: r.Limit, Period: r.Period, Burst: r.Burst}.WithDefaults()
}

// periods returns the number of whole periods to run: --duration when set
// (at least 2), else --periods.
func (r *RateLimit) periods(env *Env) int {
	if d := env.Common.Duration; d > 0 {
		return max(2, int(d/r.Period))
	}
	return r.Periods
}

// rateLimitTally is one worker's client-side tally, on its own cache line.
type rateLimitTally struct {
	admitted, refused int64
	calls             int            // the worker's own count, to rotate over users
	refusedAt         [][]int64      // per user: server time (µs) of each refusal
	admissions        [][]limitEntry // per user: the audit log's entries
	_                 [64]byte
}

// limitEntry is one decision of the audit log: its member (unique per
// decision) and the server time (µs) it was taken at.
type limitEntry struct {
	member string
	at     int64
}

// limitLogChunk is how many log entries one pipeline writes.
const limitLogChunk = 1000

// limitSteadyUser is the steadily paced client's user.
const limitSteadyUser = "steady"

// Run implements Scenario.
func (r *RateLimit) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	lb, ok := env.Backend.(impl.LimitBackend)
	if !ok {
		return cell, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	opts := r.options(env.Keys)
	lim, err := lb.Limiter(strategy, opts)
	if err != nil {
		return cell, err
	}
	libraryParams(&cell, lim)
	// judged is the strategy whose promise the judge holds the limiter to:
	// its own, or for a library the algorithm it documents.
	judged := limitJudgedAs(strategy)
	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}
	periods := r.periods(env)
	span := time.Duration(periods) * r.Period
	users := make([]string, r.Users)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
	}
	logKey := func(user string) string { return env.Keys.Tagged("ratelimit-log", user) }
	refusedKey := env.Keys.Tagged("ratelimit-refused", limitSteadyUser)

	// Start on a window boundary of the server's clock, so that the span
	// measured is whole aligned windows.
	clock, start, err := limitAlignedStart(ctx, env.Admin, r.Period)
	if err != nil {
		return cell, err
	}
	if err := impl.Sleep(ctx, time.Until(clock.local(start).Add(rateLimitStartLag))); err != nil {
		return cell, err
	}
	// decidedAt is the server time (µs) of a decision that arrived at
	// arrived: the limiter's own time, or the arrival on the server's clock.
	decidedAt := func(d impl.Decision, arrived time.Time) int64 {
		if d.At.IsZero() {
			return clock.micros(arrived)
		}
		return d.At.UnixMicro()
	}

	// The steady client: one request every 2P/L (half the allowed rate),
	// each after the previous answer, so its gaps never shrink. Its
	// requests run beside the engine; the ones that fail are added to the
	// cell's operations and errors after the run (addFailures), so that a
	// failing limiter is seen, not just a silent steady client.
	var steady struct {
		requests, admitted, refused int64
		log, refusedLog             []limitEntry
		failed                      []error
	}
	var stopSteady atomic.Bool
	var wg sync.WaitGroup
	if r.Steady {
		interval := 2 * r.Period / time.Duration(r.Limit)
		wg.Go(func() {
			for i := 0; !stopSteady.Load(); i++ {
				d, err := lim.Allow(ctx, limitSteadyUser, 1)
				switch {
				case err != nil && ctx.Err() != nil:
					return // interrupted: the runner says so
				case err != nil:
					steady.failed = append(steady.failed, err)
				default:
					e := limitEntry{member: "s" + strconv.Itoa(i), at: decidedAt(d, time.Now())}
					steady.requests++
					if d.Allowed {
						steady.admitted++
						steady.log = append(steady.log, e)
					} else {
						steady.refused++
						steady.refusedLog = append(steady.refusedLog, e)
					}
				}
				if err := impl.Sleep(ctx, interval); err != nil {
					return
				}
			}
		})
	}

	// Sample MEMORY USAGE of every user's state every half period while the
	// load runs (keys expire once it stops), keeping each user's peak, and
	// judge the limiter keys' expiries as they are.
	mem := limitMemorySampler{peak: make([]int64, len(users)), live: func() []string {
		var keys []string
		w := limitFloorDiv(clock.micros(time.Now()), opts.Period.Microseconds())
		for _, u := range append(slices.Clone(users), limitSteadyUser) {
			if strategy == impl.LimitFixedWindow {
				for d := int64(-1); d <= 1; d++ {
					keys = append(keys, impl.LimitWindowKey(env.Keys, u, w+d))
				}
				continue
			}
			keys = append(keys, impl.LimitKey(env.Keys, strategy, u))
		}
		return keys
	}}
	samplerCtx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		mem.run(samplerCtx, env.Admin, strategy, opts, users)
	}()

	tallies := make([]rateLimitTally, conc)
	// Room for twice the nominal admissions: the naive strategy over-admits.
	perUser := 2*int(limitAllowedInSpan(judged, opts, periods))/conc + 16
	for i := range tallies {
		tallies[i].refusedAt = make([][]int64, len(users))
		tallies[i].admissions = make([][]limitEntry, len(users))
		for u := range users {
			tallies[i].admissions[u] = make([]limitEntry, 0, perUser)
		}
	}
	stats, runErr := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Duration:    span,
		Seed:        env.Common.Seed,
		Steps:       []string{"decision"},
	}, func(ctx context.Context, w *bench.Worker) error {
		t := &tallies[w.ID]
		ui := (w.ID + t.calls) % len(users)
		user := users[ui]
		t.calls++
		begin := time.Now()
		d, err := lim.Allow(ctx, user, 1)
		end := time.Now()
		w.Observe(0, end.Sub(begin))
		if err != nil {
			return err
		}
		if !d.Allowed {
			t.refused++
			if !d.At.IsZero() {
				t.refusedAt[ui] = append(t.refusedAt[ui], d.At.UnixMicro())
			}
			return nil
		}
		t.admitted++
		t.admissions[ui] = append(t.admissions[ui], limitEntry{member: "w" + strconv.FormatInt(w.Seq, 10), at: decidedAt(d, end)})
		return nil
	})
	stopSampler()
	<-sampled
	stopSteady.Store(true)
	wg.Wait()
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)
	addFailures(&cell, env.Backend.Classify, steady.failed)

	out := rateLimitOutcome{
		strategy: judged, opts: opts, users: len(users), periods: periods,
		steady: r.Steady, steadyEvery: 2 * r.Period / time.Duration(r.Limit),
		steadyRequests: steady.requests, steadyAdmitted: steady.admitted,
		failed:  stats.ErrorCount() + int64(len(steady.failed)),
		nominal: limitAllowedInSpan(judged, opts, periods),
		expiry:  mem.expiry,
	}
	for _, t := range tallies {
		out.admitted += t.admitted
		out.refused += t.refused
	}
	dec := result.Summarize(stats.Steps["decision"])
	cell.Figures = map[string]float64{
		"users":                float64(len(users)),
		"limit":                float64(opts.Limit),
		"period_ms":            float64(opts.Period) / float64(time.Millisecond),
		"periods":              float64(periods),
		"burst":                float64(opts.Burst),
		"decisions":            float64(stats.Ops),
		"decisions_per_s":      stats.Throughput(),
		"decision_p50_us":      float64(dec.P50),
		"decision_p99_us":      float64(dec.P99),
		"decision_max_us":      float64(dec.Max),
		"admitted":             float64(out.admitted),
		"refused":              float64(out.refused),
		"bound":                float64(limitBoundFigure(judged, opts)),
		"nominal_per_user":     float64(out.nominal),
		"memory_bytes_per_key": mem.mean(),
		"errors":               float64(out.failed),
	}
	if r.Steady {
		cell.Figures["steady_requests"] = float64(steady.requests)
		cell.Figures["steady_admitted"] = float64(steady.admitted)
		cell.Figures["steady_refused"] = float64(steady.refused)
		cell.Figures["steady_failed"] = float64(len(steady.failed))
	}

	// From here on paybench reads the server to judge: a failure of its
	// own is not the limiter's, and leaves the cell INCONCLUSIVE with the
	// figures above.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if mem.err != nil {
		return cell, JudgementError(fmt.Errorf("limiter sampler: %w", mem.err))
	}
	// The expiries as the load left them, before the log is written.
	last, err := scanLimitExpiries(vctx, env.Admin, opts)
	if err != nil {
		return cell, JudgementError(err)
	}
	out.expiry.add(last)

	// Write the audit log, then read it back from the server.
	logs := map[string][]limitEntry{}
	for _, t := range tallies {
		for ui, u := range users {
			logs[logKey(u)] = append(logs[logKey(u)], t.admissions[ui]...)
		}
	}
	if r.Steady {
		logs[logKey(limitSteadyUser)] = steady.log
		logs[refusedKey] = steady.refusedLog
	}
	if err := writeLimitLogs(vctx, env.Admin, logs); err != nil {
		return cell, JudgementError(err)
	}
	spanStart, spanEnd := start.UnixMicro(), start.Add(span).UnixMicro()
	out.agg = rateLimitAggregate{minVsRule: math.Inf(1), minNominal: math.Inf(1)}
	for ui, u := range users {
		times, err := limitReadLog(vctx, env.Admin, logKey(u))
		if err != nil {
			return cell, JudgementError(err)
		}
		var refusedAt []int64
		for _, t := range tallies {
			refusedAt = append(refusedAt, t.refusedAt[ui]...)
		}
		slices.Sort(refusedAt)
		out.agg.add(analyzeLimit(strategy, opts, times, refusedAt, spanStart, spanEnd))
	}
	if r.Steady {
		admitted, err := limitReadLog(vctx, env.Admin, logKey(limitSteadyUser))
		if err != nil {
			return cell, JudgementError(err)
		}
		refused, err := limitReadLog(vctx, env.Admin, refusedKey)
		if err != nil {
			return cell, JudgementError(err)
		}
		out.steadyLogged = int64(len(admitted))
		out.lockouts = limitLockouts(admitted, refused, r.Period.Microseconds(), r.Limit)
	}
	out.figures(cell.Figures)
	cell.Invariants = out.invariants()
	cell.Summary = out.summary()
	return cell, nil
}

// rateLimitOutcome is what a rate-limit cell's verdict is made of: its
// figures, its invariants and its summary line are all computed from it,
// so the summary can never claim what an invariant denies.
type rateLimitOutcome struct {
	strategy string
	opts     impl.LimitOptions
	users    int
	periods  int
	nominal  int64 // most a user can be admitted in the span (limitAllowedInSpan)

	admitted, refused int64 // decisions answered to the workers
	failed            int64 // decisions that failed (workers and steady client)
	agg               rateLimitAggregate

	steady                         bool
	steadyEvery                    time.Duration
	steadyRequests, steadyAdmitted int64 // answered to the steady client
	steadyLogged                   int64
	lockouts                       int64

	expiry limitExpiryCheck
}

// figures adds the outcome's judged figures to f.
func (o rateLimitOutcome) figures(f map[string]float64) {
	n := float64(o.users)
	f["admitted_logged"] = float64(o.agg.admitted)
	f["max_per_sliding_window"] = float64(o.agg.maxSliding)
	f["max_per_fixed_window"] = float64(o.agg.maxFixed)
	f["over_admitted"] = float64(o.agg.violations)
	f["over_admission_max"] = float64(o.agg.excessMax)
	if o.agg.slackUsed > 0 {
		f["early_within_precision"] = float64(o.agg.slackUsed)
		f["early_within_precision_max_us"] = float64(o.agg.slackMax)
	}
	f["admitted_vs_nominal"] = o.agg.sumNominal / n
	if o.strategy != impl.LimitNaive {
		f["admitted_vs_rule_min"] = limitFinite(o.agg.minVsRule)
		f["admitted_vs_sliding_limit"] = o.agg.sumVsSliding / n
		f["under_admission_tolerance"] = rateLimitTolerance
	}
	if o.steady {
		f["steady_admitted_logged"] = float64(o.steadyLogged)
		f["steady_lockouts"] = float64(o.lockouts)
	}
	limitExpiryFigures(f, o.expiry)
}

// underAdmitted reports whether a user got less than its own rule admits.
func (o rateLimitOutcome) underAdmitted() bool {
	return o.strategy != impl.LimitNaive && o.agg.minVsRule < 1-rateLimitTolerance
}

// answered reports whether every decision was answered and logged.
//
// Failed decisions are no part of it: the runner sees every failed
// operation in the cell's errors and withholds a verdict for them, so the
// strategy is never blamed for a fault's refusals.
func (o rateLimitOutcome) answered() bool {
	return o.agg.admitted == o.admitted && (!o.steady || o.steadyLogged == o.steadyAdmitted)
}

// invariants judges the outcome.
func (o rateLimitOutcome) invariants() []result.Invariant {
	n, opts := float64(o.users), o.opts
	inv := []result.Invariant{limitBoundInvariant(o.strategy, opts, o.agg)}
	if o.strategy == impl.LimitSlidingWindow {
		inv = append(inv, Check("no sliding window above 2×limit", o.agg.maxSliding <= 2*opts.Limit,
			"at most %d admitted in any %s (the weighted counter's worst case is %d)", o.agg.maxSliding, opts.Period, 2*opts.Limit))
	}
	if o.strategy != impl.LimitNaive {
		inv = append(inv, Check("no under-admission", !o.underAdmitted(),
			"every user got at least %.2f%% of what the %s rule admits when replayed over the same %d decisions (tolerance %.0f%%); "+
				"%.1f%% of what an exact limit of %d per sliding %s would admit; %.1f%% of the nominal %d per user in %d aligned periods",
			100*limitFinite(o.agg.minVsRule), o.strategy, o.agg.admitted+o.refused, 100*rateLimitTolerance,
			100*o.agg.sumVsSliding/n, opts.Limit, opts.Period, 100*o.agg.sumNominal/n, o.nominal, o.periods))
	}
	inv = append(inv, Check("every admission logged", o.answered(),
		"%d decisions failed; %d admissions answered, %d logged; the steady client's %d admissions, %d logged",
		o.failed, o.admitted, o.agg.admitted, o.steadyAdmitted, o.steadyLogged))
	if o.steady {
		inv = append(inv, Check("steady client never locked out", o.lockouts == 0,
			"a client asking every %s (half its limit) was refused %d times while its last %s held fewer than %d admissions (%d requests, %d admitted)",
			o.steadyEvery, o.lockouts, opts.Period, opts.Limit, o.steadyRequests, o.steadyAdmitted))
	}
	return append(inv, limitExpiryInvariant(o.strategy, o.expiry))
}

// summary is the cell's line, from the same figures as its invariants:
// the bound and the rates, then a clause for every other invariant that
// failed.
func (o rateLimitOutcome) summary() string {
	n, opts, g := float64(o.users), o.opts, o.agg
	var s string
	if g.violations > 0 {
		s = fmt.Sprintf("%s broken: %d admissions over it, up to %d in one %s (limit %d); %.0f%% of the nominal rate",
			limitBoundName(o.strategy), g.violations, g.maxSliding, opts.Period, opts.Limit, 100*g.sumNominal/n)
	} else {
		s = fmt.Sprintf("at most %d per sliding %s, %d per aligned window (limit %d); %.1f%% of an exact sliding limit, %.1f%% of the nominal rate",
			g.maxSliding, opts.Period, g.maxFixed, opts.Limit, 100*g.sumVsSliding/n, 100*g.sumNominal/n)
	}
	if o.strategy == impl.LimitSlidingWindow && g.maxSliding > 2*opts.Limit {
		s += fmt.Sprintf("; %d in one sliding window, above 2×limit", g.maxSliding)
	}
	if o.underAdmitted() {
		s += fmt.Sprintf("; under-admitted: a user got %.1f%% of what its rule admits", 100*limitFinite(g.minVsRule))
	}
	if o.steady {
		if o.lockouts > 0 {
			s += fmt.Sprintf("; steady client locked out %d times", o.lockouts)
		} else {
			s += "; steady client never locked out"
		}
	}
	if !o.answered() || o.failed > 0 {
		s += fmt.Sprintf("; %d decisions failed, %d of %d admissions logged", o.failed, g.admitted, o.admitted)
	}
	if e := o.expiry; e.violations() > 0 {
		s += fmt.Sprintf("; limiter keys out of their documented expiry: %d never expire, %d expire early, %d late", e.noExpiry, e.early, e.late)
	}
	return s
}

// serverClock maps local times onto the server's clock: one reading of
// the server's TIME and the local time in the middle of its round trip
// (with Go's monotonic reading, so a step of the local wall clock does not
// move the mapping).
type serverClock struct {
	server, at time.Time
}

// micros returns local time t on the server's clock, in microseconds.
func (c serverClock) micros(t time.Time) int64 {
	return c.server.UnixMicro() + t.Sub(c.at).Microseconds()
}

// local returns server time t on the local clock.
func (c serverClock) local(t time.Time) time.Time { return c.at.Add(t.Sub(c.server)) }

// limitAlignedStart reads the server's clock and returns it, with the next
// window boundary at least 20 ms ahead (server time).
func limitAlignedStart(ctx context.Context, admin redis.UniversalClient, period time.Duration) (serverClock, time.Time, error) {
	before := time.Now()
	srv, err := admin.Time(ctx).Result()
	if err != nil {
		return serverClock{}, time.Time{}, fmt.Errorf("read the server's TIME: %w", err)
	}
	after := time.Now()
	clock := serverClock{server: srv, at: before.Add(after.Sub(before) / 2)}
	p := period.Microseconds()
	us := (srv.Add(20*time.Millisecond).UnixMicro() + p - 1) / p * p
	return clock, time.UnixMicro(us), nil
}

// writeLimitLogs writes the audit logs, key by key, in pipelines of
// limitLogChunk entries: each entry a member of the key's sorted set,
// scored by its server time in microseconds.
func writeLimitLogs(ctx context.Context, admin redis.UniversalClient, logs map[string][]limitEntry) error {
	pipe := admin.Pipeline()
	flush := func() error {
		if pipe.Len() == 0 {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("write the audit log: %w", err)
		}
		return nil
	}
	for key, entries := range logs {
		for _, e := range entries {
			pipe.ZAdd(ctx, key, redis.Z{Score: float64(e.at), Member: e.member})
			if pipe.Len() >= limitLogChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}
