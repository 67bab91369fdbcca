package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

func init() { Register(func() Scenario { return newLockRace() }) }

// The critical section's own commands. A holder runs them through the
// backend under test, as an application runs its work on its own client:
// the read and the write of the shared counter are separate round trips,
// so only the lock keeps an update from being lost.
const (
	counterGetSrc  = "return tonumber(redis.call('GET', KEYS[1]) or '0')"
	counterSetSrc  = "redis.call('SET', KEYS[1], ARGV[1]) return 1"
	counterIncrSrc = "return redis.call('INCR', KEYS[1])"
)

// Steps every lock scenario records: the wait to take the lock (successful
// acquisitions only), the time from taking it to having released it, and
// the release itself.
var lockSteps = []string{"acquire", "hold", "release"}

const (
	stepAcquire = iota
	stepHold
	stepRelease
)

// lockScenarioDuration is the default length of a lock scenario cell.
const lockScenarioDuration = 2 * time.Second

// LockRace is W workers taking one lock over and over and doing a
// read-modify-write of a shared counter inside it, each for a work time
// drawn around the lease's TTL, so that some leases expire under their
// holders. A server-side probe counts who is inside and whether their
// leases were still live.
//
// One measured operation is one holder's cycle, every Redis call of it
// through the backend under test: Locker.Acquire (its waits included), the
// probe's entry script, the counter's read, the work pause, the counter's
// write, the probe's exit script and Locker.Release. The probes must run
// while the lock is held and read the lock's key atomically (whose token,
// its PEXPIRETIME), so they are scripts on the holder's own client
// (impl.ScriptBackend), not bookkeeping that could wait; the tallies of
// refused and foreign releases are kept in memory and written to the
// probe's hash after the run.
type LockRace struct {
	// TTL is the lease length.
	TTL time.Duration
	// WorkMin and WorkMax bound the work time inside the lock (uniform).
	WorkMin, WorkMax time.Duration
	// AcquireTimeout bounds one acquisition's wait.
	AcquireTimeout time.Duration
	// Watchdog refreshes token and fenced leases while their holders work.
	Watchdog bool
	// RedlockRestart applies, on a Redlock deployment (--redis
	// redlock:N), the restart fault (redlockFault).
	RedlockRestart bool

	work string
}

func newLockRace() *LockRace {
	return &LockRace{TTL: 100 * time.Millisecond, AcquireTimeout: time.Second, RedlockRestart: true, work: "50ms-150ms"}
}

// Name implements Scenario.
func (s *LockRace) Name() string { return "lock-race" }

// Description implements Scenario.
func (s *LockRace) Description() string {
	return "workers share one lock around a read-modify-write; the seed's unconditional DEL frees the next holder's lock"
}

// Strategies implements Scenario.
func (s *LockRace) Strategies() []Strategy {
	return append([]Strategy{
		{Name: impl.LockNaive, Expect: result.Break, Note: "the seed's lock: SET locked NX EX, 100 ms poll, unconditional DEL"},
		{Name: impl.LockToken, Expect: result.Hold, Note: "random token, compare-and-delete release, back-off with jitter"},
		{Name: impl.LockFenced, Expect: result.Hold, Note: "token lock plus a fencing token"},
	}, lockLibraryStrategies(false)...)
}

// Flags implements Scenario.
func (s *LockRace) Flags(fs *pflag.FlagSet) {
	fs.DurationVar(&s.TTL, "ttl", s.TTL, "lease length of the lock")
	fs.StringVar(&s.work, "work", s.work, "work time inside the lock: D, or MIN-MAX drawn per acquisition (around the TTL makes leases expire)")
	fs.DurationVar(&s.AcquireTimeout, "acquire-timeout", s.AcquireTimeout, "longest wait for the lock before an attempt is counted as timed out")
	fs.BoolVar(&s.Watchdog, "watchdog", s.Watchdog, "token, fenced, redsync and redislock: refresh leases in the background while holders work (rueidislock always extends its own)")
	fs.BoolVar(&s.RedlockRestart, "redlock-restart", s.RedlockRestart, "with --redis redlock:N: restart (without persistence) a server holding a bare majority of the lock, whenever one is seen")
}

// Validate implements Scenario.
func (s *LockRace) Validate() error {
	lo, hi, err := parseDurationRange(s.work)
	if err != nil {
		return fmt.Errorf("--work: %w", err)
	}
	s.WorkMin, s.WorkMax = lo, hi
	return validateLockParams(s.TTL, s.AcquireTimeout)
}

// Params implements Scenario.
func (s *LockRace) Params() map[string]string {
	return map[string]string{
		"ttl":             s.TTL.String(),
		"work":            s.work,
		"acquire_timeout": s.AcquireTimeout.String(),
		"watchdog":        strconv.FormatBool(s.Watchdog),
		"redlock_restart": strconv.FormatBool(s.RedlockRestart),
	}
}

func validateLockParams(ttl, acquireTimeout time.Duration) error {
	switch {
	case ttl < time.Millisecond:
		return fmt.Errorf("--ttl must be at least 1ms, got %s", ttl)
	case acquireTimeout <= 0:
		return fmt.Errorf("--acquire-timeout must be positive, got %s", acquireTimeout)
	}
	return nil
}

// parseDurationRange parses "D" or "MIN-MAX" (each >= 0).
func parseDurationRange(s string) (lo, hi time.Duration, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err = time.ParseDuration(strings.TrimSpace(a))
	if err != nil || lo < 0 {
		return 0, 0, fmt.Errorf("%q is not D or MIN-MAX (durations such as 50ms)", s)
	}
	hi = lo
	if isRange {
		hi, err = time.ParseDuration(strings.TrimSpace(b))
		if err != nil || hi < lo {
			return 0, 0, fmt.Errorf("%q is not D or MIN-MAX (durations such as 50ms-150ms)", s)
		}
	}
	return lo, hi, nil
}

// lockTally is one worker's client-side tally, on its own cache line.
type lockTally struct {
	started                 bool
	acquired, timeouts      int64
	retries, maxRetries     int64 // over successful acquisitions
	refused, foreignDeletes int64
	paused, overtaken       int64 // lock-expiry
	staleRejected           int64 // lock-expiry
	_                       [64]byte
}

// lockTallies adds up the workers' tallies.
func lockTallies(ts []lockTally) lockTally {
	var sum lockTally
	for _, t := range ts {
		sum.acquired += t.acquired
		sum.timeouts += t.timeouts
		sum.retries += t.retries
		sum.maxRetries = max(sum.maxRetries, t.maxRetries)
		sum.refused += t.refused
		sum.foreignDeletes += t.foreignDeletes
		sum.paused += t.paused
		sum.overtaken += t.overtaken
		sum.staleRejected += t.staleRejected
	}
	return sum
}

// lockRun is what the lock scenarios share: the locker, the run's end and
// the per-worker tallies.
type lockRun struct {
	locker         impl.Locker
	name           string
	acquireTimeout time.Duration
	run            time.Duration // the run's length (start)
	endOnce        sync.Once
	end            time.Time // set by the first acquisition (endOnce)
	tallies        []lockTally
	// hist, when set, prepares the cell's history (recordHistory); it
	// records when its recorder is set.
	hist *lockHistory
}

// recordHistory prepares the cell's history for the lock model: the
// strategy opened with opts, about ops operations.
func (r *lockRun) recordHistory(env *Env, strategy string, opts impl.LockOptions, ops int64) {
	r.hist = newLockHistory(env, strategy, opts.WithDefaults(), r.name, len(r.tallies), ops)
}

// newLockRun opens the strategy with opts and sizes the tallies.
func newLockRun(env *Env, strategy string, opts impl.LockOptions, name string, acquireTimeout time.Duration) (*lockRun, bench.Config, error) {
	lb, ok := env.Backend.(impl.LockBackend)
	if !ok {
		return nil, bench.Config{}, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	opts.Keys = env.Keys
	locker, err := lb.Lock(strategy, opts)
	if err != nil {
		return nil, bench.Config{}, err
	}
	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}
	d := env.Common.Duration
	if d <= 0 {
		d = lockScenarioDuration
	}
	r := &lockRun{locker: locker, name: name, acquireTimeout: acquireTimeout, tallies: make([]lockTally, conc)}
	return r, bench.Config{Concurrency: conc, Duration: d, Steps: lockSteps, Seed: env.Common.Seed}, nil
}

// lockStagger spreads the workers' first acquisitions (the naive lock's
// poll period).
const lockStagger = impl.DefaultNaivePoll

// lockFailPause is the pause after an acquisition that failed (not one
// that timed out waiting).
const lockFailPause = 25 * time.Millisecond

// lockEndGrace is how long after the engine stops starting operations an
// acquisition may still wait. The engine's stop comes from a timer started
// a moment after start is called; without the grace, workers would spin
// through instant, cut-short acquisitions until it fires.
const lockEndGrace = 50 * time.Millisecond

// start notes how long the run lasts; call it before bench.Run. The end
// is fixed by the first acquisition, which comes right after the engine
// starts its clock: the engine builds its workers before, which can take
// long enough on a busy machine that an end fixed here would come before
// the engine's, and the workers would spin through instant, cut-short
// acquisitions until the engine stops.
func (r *lockRun) start(cfg bench.Config) { r.run = cfg.Duration }

// acquire takes the lock within the acquire time-out and the run's end.
// ok is false (and err nil) when the wait timed out: under contention that
// is an outcome, not a failure.
func (r *lockRun) acquire(ctx context.Context, w *bench.Worker) (lease impl.Lease, ok bool, err error) {
	t := &r.tallies[w.ID]
	if !t.started {
		// Workers arrive at random moments within the first lockStagger,
		// as requests do, rather than all at once: the seed's fixed 100 ms
		// poll would otherwise keep every waiter polling in lock-step.
		t.started = true
		if err := impl.Sleep(ctx, time.Duration(w.Rand.Int64N(int64(lockStagger)))); err != nil {
			return lease, false, err
		}
	}
	start := time.Now()
	r.endOnce.Do(func() { r.end = start.Add(r.run + lockEndGrace) })
	deadline, cut := start.Add(r.acquireTimeout), false
	if r.end.Before(deadline) {
		deadline, cut = r.end, true
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if hl := r.hist.log(w); hl != nil {
		lease, err = r.hist.acquire(actx, hl, r.locker, r.name, w.Seq)
	} else {
		lease, err = r.locker.Acquire(actx, r.name)
	}
	if err != nil {
		if errors.Is(err, impl.ErrLockNotAcquired) && ctx.Err() == nil {
			if !cut { // a wait cut short by the run's end is not a time-out
				t.timeouts++
			}
			return lease, false, nil
		}
		// A server that refuses connections (restarting) fails an
		// acquisition at once: pause, as an application would, rather
		// than spin through failed cycles.
		_ = impl.Sleep(ctx, lockFailPause)
		return lease, false, err
	}
	w.Observe(stepAcquire, time.Since(start))
	t.acquired++
	t.retries += int64(lease.Retries)
	t.maxRetries = max(t.maxRetries, int64(lease.Retries))
	return lease, true, nil
}

// release releases lease, recording the release and the time held since
// acquired; refused reports ErrLockNotHeld.
func (r *lockRun) release(ctx context.Context, w *bench.Worker, lease impl.Lease, acquired time.Time) (refused bool, err error) {
	hl := r.hist.log(w)
	call := hl.Now()
	start := time.Now()
	err = r.locker.Release(ctx, lease)
	end := time.Now()
	r.hist.record(hl, histcheck.LockRelease, w.Seq, lease, call, hl.Now(), err, impl.ErrLockNotHeld)
	w.Observe(stepRelease, end.Sub(start))
	w.Observe(stepHold, end.Sub(acquired))
	if errors.Is(err, impl.ErrLockNotHeld) {
		r.tallies[w.ID].refused++
		return true, nil
	}
	return false, err
}

// lockFigures are the figures every lock cell reports.
func lockFigures(stats *bench.Stats, sum lockTally, ttl time.Duration) map[string]float64 {
	f := map[string]float64{
		"acquisitions":            float64(sum.acquired),
		"acquisitions_per_s":      0,
		"acquire_timeouts":        float64(sum.timeouts),
		"retries_per_acquisition": 0,
		"retries_max":             float64(sum.maxRetries),
		"ttl_ms":                  ms(ttl),
		"errors":                  float64(stats.ErrorCount()),
	}
	if s := stats.Elapsed.Seconds(); s > 0 {
		f["acquisitions_per_s"] = float64(sum.acquired) / s
	}
	if sum.acquired > 0 {
		f["retries_per_acquisition"] = float64(sum.retries) / float64(sum.acquired)
	}
	if h := stats.Steps[lockSteps[stepAcquire]]; h != nil && h.TotalCount() > 0 {
		f["acquire_p50_ms"] = float64(h.ValueAtQuantile(50)) / 1e3
		f["acquire_p99_ms"] = float64(h.ValueAtQuantile(99)) / 1e3
		f["acquire_max_ms"] = float64(h.Max()) / 1e3
	}
	if h := stats.Steps[lockSteps[stepHold]]; h != nil && h.TotalCount() > 0 {
		f["held_mean_ms"] = h.Mean() / 1e3
		f["held_p99_ms"] = float64(h.ValueAtQuantile(99)) / 1e3
		f["held_max_ms"] = float64(h.Max()) / 1e3
	}
	return f
}

// lockSummary is the head of a lock cell's summary line.
func lockSummary(f map[string]float64) string {
	return fmt.Sprintf("%.0f acquisitions (%.0f/s, %.1f retries each, %.0f timed out), acquire p50 %s p99 %s, held %s mean",
		f["acquisitions"], f["acquisitions_per_s"], f["retries_per_acquisition"], f["acquire_timeouts"],
		fmtMs(f["acquire_p50_ms"]), fmtMs(f["acquire_p99_ms"]), fmtMs(f["held_mean_ms"]))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMs(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
}

// drawDuration draws uniformly from [lo, hi].
func drawDuration(w *bench.Worker, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(w.Rand.Int64N(int64(hi-lo)+1))
}

// lockRaceKeys are the scenario's own keys, sharing the lock's hash tag.
type lockRaceKeys struct {
	inside, stats, owner, counter, lock string
}

// probe returns the keys the probe scripts take, in their order.
func (k lockRaceKeys) probe() []string { return []string{k.inside, k.stats, k.owner, k.lock} }

const lockRaceName = "race"

// Where a lock-race cycle can fail.
const (
	lockStageAcquire = "acquire" // taking the lock (its waits included)
	lockStageEnter   = "enter"   // the probe's entry script
	lockStageSection = "section" // the counter's read, the work, the counter's write
	lockStageLeave   = "leave"   // the probe's exit script
	lockStageRelease = "release" // releasing the lock
)

// lockRaceFailure is one cycle that failed, and where.
type lockRaceFailure struct {
	stage   string
	id      string // the holder's id, once it held the lock
	foreign bool   // release: the probe found the lock another holder's
	err     error
}

// Run implements Scenario.
func (s *LockRace) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	opts := impl.LockOptions{TTL: s.TTL, Watchdog: s.Watchdog && strategy != impl.LockNaive}
	r, cfg, err := newLockRun(env, strategy, opts, lockRaceName, s.AcquireTimeout)
	if err != nil {
		return cell, err
	}
	keys := lockRaceKeys{
		inside:  env.Keys.Tagged("lockrace", lockRaceName, "inside"),
		stats:   env.Keys.Tagged("lockrace", lockRaceName, "stats"),
		owner:   env.Keys.Tagged("lockrace", lockRaceName, "owner"),
		counter: env.Keys.Tagged("lockrace", lockRaceName, "counter"),
		lock:    impl.LockKeyOf(r.locker, env.Keys, lockRaceName),
	}
	libraryParams(&cell, r.locker)
	r.recordHistory(env, strategy, opts, lockHistoryOps(cfg.Duration, s.WorkMin, 2))
	sb, ok := env.Backend.(impl.ScriptBackend)
	if !ok {
		return cell, fmt.Errorf("%s: scripts: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	probeEnter, probeLeave := sb.Script(scripts.LockProbeEnter), sb.Script(scripts.LockProbeLeave)
	counterGet, counterSet := sb.Script(counterGetSrc), sb.Script(counterSetSrc)
	if err := env.Admin.Set(ctx, keys.counter, 0, 0).Err(); err != nil {
		return cell, fmt.Errorf("seed counter: %w", err)
	}
	admin := env.Admin
	uniqueTokens := "1"
	if strategy == impl.LockNaive {
		uniqueTokens = "0"
	}

	// Each worker notes its failed cycles (where, and the holder's id), to
	// settle them against the probe after the run.
	fails := make([][]lockRaceFailure, len(r.tallies))
	var fault *redlockFault
	var gate *sync.RWMutex // held shared by the harness's calls while the first server may restart
	if s.RedlockRestart {
		var first *firstRestart
		if strategy != impl.LockRedsync {
			// The lock lives on the first server only: restart that one.
			gate = &sync.RWMutex{}
			first = &firstRestart{gate: gate, keys: env.Keys, inside: keys.inside, lockKeys: map[string]bool{
				keys.lock: true, impl.LockFenceKey(env.Keys, lockRaceName): true,
			}}
		}
		fault = startRedlockFault(ctx, env, keys.lock, first)
		if fault == nil || fault.first == nil {
			gate = nil
		}
	}
	// harness runs one of the cycle's calls on the probe, the counter or
	// the resource — state that stands for what lives elsewhere — held
	// back while the first server restarts.
	harness := func(call func() error) error {
		if gate != nil {
			gate.RLock()
			defer gate.RUnlock()
		}
		return call()
	}
	// With the first server restarting, each holder also writes the
	// protected resource through the lock (Locker.Write: fenced for the
	// fenced lock), to show what fencing does across the restart.
	writeResource := gate != nil
	r.start(cfg)
	stats, runErr := env.Drive(ctx, cfg, func(ctx context.Context, w *bench.Worker) error {
		fail := func(stage, id string, foreign bool, err error) error {
			fails[w.ID] = append(fails[w.ID], lockRaceFailure{stage: stage, id: id, foreign: foreign, err: err})
			return err
		}
		lease, ok, err := r.acquire(ctx, w)
		if err != nil {
			return fail(lockStageAcquire, "", false, err)
		}
		if !ok {
			return nil
		}
		acquired := time.Now()
		id := strconv.Itoa(w.ID) + ":" + strconv.FormatInt(w.Seq, 10)
		mode, until := uniqueTokens, ""
		if !lease.Until.IsZero() {
			// Redlock: the lease is the client's validity time.
			mode, until = "2", strconv.FormatInt(lease.Until.UnixMilli(), 10)
		}
		if err := harness(func() error { _, err := probeEnter.Run(ctx, keys.probe(), id, lease.Token, until); return err }); err != nil {
			return fail(lockStageEnter, id, false, fmt.Errorf("probe enter: %w", err))
		}
		// The critical section: an unguarded read-modify-write that only
		// the lock keeps from losing updates.
		var v []int64
		if err := harness(func() (err error) { v, err = counterGet.Run(ctx, []string{keys.counter}); return err }); err != nil {
			return fail(lockStageSection, id, false, fmt.Errorf("read counter: %w", err))
		}
		if len(v) != 1 {
			return fail(lockStageSection, id, false, fmt.Errorf("read counter: replied %v", v))
		}
		if err := impl.Sleep(ctx, drawDuration(w, s.WorkMin, s.WorkMax)); err != nil {
			return fail(lockStageSection, id, false, err)
		}
		if err := harness(func() error {
			_, err := counterSet.Run(ctx, []string{keys.counter}, strconv.FormatInt(v[0]+1, 10))
			return err
		}); err != nil {
			return fail(lockStageSection, id, false, fmt.Errorf("write counter: %w", err))
		}
		if writeResource {
			err := harness(func() error { return r.locker.Write(ctx, lockRaceName, lease, id) })
			if err != nil && !errors.Is(err, impl.ErrStaleFence) {
				return fail(lockStageSection, id, false, fmt.Errorf("write resource: %w", err))
			}
		}
		var left []int64
		if err := harness(func() (err error) { left, err = probeLeave.Run(ctx, keys.probe(), id, lease.Token, mode); return err }); err != nil {
			return fail(lockStageLeave, id, false, fmt.Errorf("probe leave: %w", err))
		}
		foreign := len(left) > 0 && left[0] == 1
		refused, err := r.release(ctx, w, lease, acquired)
		if err != nil {
			return fail(lockStageRelease, id, foreign, err)
		}
		// A release that went through although the lock belonged to
		// another holder a moment before. Only the naive lock's DEL can
		// have deleted that holder's lock: every other lock releases by
		// compare-and-delete, which goes through only where the lock
		// holds the releaser's own token (redsync on a Redlock
		// deployment: its own copies on the other servers, while the
		// probe reads the first).
		if foreign && !refused && strategy == impl.LockNaive {
			r.tallies[w.ID].foreignDeletes++
		}
		return nil
	})
	fault.Stop()
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)
	cell.History = r.hist.result(ctx, env.Common.History)
	sum := lockTallies(r.tallies)
	f := lockFigures(stats, sum, s.TTL)
	f["work_min_ms"], f["work_max_ms"] = ms(s.WorkMin), ms(s.WorkMax)
	if fault != nil {
		fault.fill(f)
	}
	cell.Figures = f

	// From here on paybench reads the probe back: a failure of its own is
	// not the lock's, and leaves the cell INCONCLUSIVE with the figures
	// above.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// The probe's hash also keeps what the holders saw of their releases.
	if _, err := admin.Pipelined(vctx, func(p redis.Pipeliner) error {
		p.HIncrBy(vctx, keys.stats, "foreign_deletes", sum.foreignDeletes)
		p.HIncrBy(vctx, keys.stats, "releases_refused", sum.refused)
		return nil
	}); err != nil {
		return cell, JudgementError(fmt.Errorf("record releases: %w", err))
	}
	server, err := readIntHash(vctx, admin, keys.stats)
	if err != nil {
		return cell, JudgementError(fmt.Errorf("read probe stats: %w", err))
	}
	counter, err := admin.Get(vctx, keys.counter).Int64()
	if err != nil {
		return cell, JudgementError(fmt.Errorf("read counter: %w", err))
	}
	stillInside, err := admin.ZCard(vctx, keys.inside).Result()
	if err != nil {
		return cell, JudgementError(fmt.Errorf("read probe: %w", err))
	}
	var failed []lockRaceFailure
	for _, fs := range fails {
		failed = append(failed, fs...)
	}
	inside, err := lockRaceStillInside(vctx, admin, keys.inside, failed)
	if err != nil {
		return cell, JudgementError(err)
	}

	out := lockRaceOutcome{
		strategy: strategy, figures: f, acquired: sum.acquired, counter: counter, stillInside: stillInside,
		entered: server["entered"], left: server["left"],
		overlaps: server["overlaps"], live: server["live_overlaps"], maxInside: server["max_inside"],
		expiredInside: server["expired_inside"], releasesForeign: server["releases_foreign"],
		releasesRefused: server["releases_refused"], foreignDeletes: server["foreign_deletes"],
	}
	out.settle(failed, inside, env.Backend.Classify)
	out.fill(f)
	cell.Settled = out.settledOps
	cell.Invariants = out.invariants()
	cell.Summary = out.summary()
	if writeResource {
		vals, err := admin.HMGet(vctx, impl.ResourceKey(env.Keys, lockRaceName), impl.ResourceWrites, impl.ResourceRejected).Result()
		if err != nil {
			return cell, JudgementError(fmt.Errorf("read resource: %w", err))
		}
		var res [2]int64
		for i, v := range vals {
			if v == nil {
				continue
			}
			if res[i], err = strconv.ParseInt(fmt.Sprint(v), 10, 64); err != nil {
				return cell, JudgementError(fmt.Errorf("read resource: %w", err))
			}
		}
		f["resource_writes"], f["resource_rejected"] = float64(res[0]), float64(res[1])
		cell.Summary += fmt.Sprintf("; resource: %d writes accepted, %d rejected by the fence", res[0], res[1])
	}
	if fault != nil {
		cell.Summary += fault.summary(out.live)
		cell.Faults = fault.faults(env.Origin)
		if fault.booksLost != nil {
			// Not the lock's doing: paybench's own restart of the first
			// server failed, and the books it judges may be incomplete.
			return cell, JudgementError(fmt.Errorf("the probe's books may be incomplete: %w", fault.booksLost))
		}
		if fault.restarted > 0 {
			// Redlock's argument: a server restarted without persistence
			// (against what Redis asks of a Redlock deployment) lets a
			// second holder in while the first holds a lease it believes
			// valid. Expected to break; the lock is not to blame.
			cell.Expect = result.Break
		}
	} else if len(env.Redlock) > 0 && strategy != impl.LockRedsync {
		cell.Summary += fmt.Sprintf("; runs on the first of %d redlock servers only", len(env.Redlock)+1)
	}
	return cell, nil
}

// lockRaceStillInside reads, for every failed cycle whose holder had the
// lock, whether the probe still has it inside (it entered and never
// left), in one pipeline.
func lockRaceStillInside(ctx context.Context, admin redis.UniversalClient, insideKey string, failed []lockRaceFailure) ([]bool, error) {
	inside := make([]bool, len(failed))
	cmds := make([]*redis.FloatCmd, len(failed))
	_, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, f := range failed {
			if f.id != "" {
				cmds[i] = p.ZScore(ctx, insideKey, f.id)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the probe for failed holders: %w", err)
	}
	for i, c := range cmds {
		if c == nil {
			continue
		}
		switch err := c.Err(); {
		case err == nil:
			inside[i] = true
		case !errors.Is(err, redis.Nil):
			return nil, fmt.Errorf("read the probe for holder %s: %w", failed[i].id, err)
		}
	}
	return inside, nil
}

// lockRaceOutcome is what a lock-race cell's verdict is made of: its
// figures, its invariants and its summary are all computed from it.
type lockRaceOutcome struct {
	strategy string
	figures  map[string]float64 // lockFigures, for the summary's head

	acquired, counter, stillInside           int64
	entered, left, overlaps, live, maxInside int64
	expiredInside, releasesForeign           int64
	releasesRefused, foreignDeletes          int64
	failed, stuck, acquiredNotEntered        int64
	lostReplies, lostStuck, unsettled        int64
	refusedCalls                             int64
	settledOps                               int64
}

// settle accounts for the failed cycles, with what the probe still holds
// (inside, index for index). A failed cycle's effect on the probe is
// known wherever it failed: before the probe's entry it never entered;
// after it, the probe says whether it is still inside (it entered and
// never left: its lease ended on its own, and holders that entered after
// that count it as an overlap after expiry, never a live one). Its effect
// on the lock is harmless — a lease nobody uses, which expires — except
// for a naive release whose reply was lost while the probe had found the
// lock another holder's: that DEL may have freed another holder's lock,
// and cannot be settled. Only failures of unknown outcome
// (unknownOutcome) count as settled, for Cell.Settled; a failure that
// surely did not apply (NOPERM, ...) still fails the cell.
func (o *lockRaceOutcome) settle(failed []lockRaceFailure, inside []bool, classify func(error) string) {
	for i, f := range failed {
		o.failed++
		if inside[i] {
			o.stuck++
		}
		if f.stage == lockStageEnter && !inside[i] {
			o.acquiredNotEntered++
		}
		known := !(f.stage == lockStageRelease && f.foreign && o.strategy == impl.LockNaive)
		switch class := classify(f.err); {
		case known && unknownOutcome(class):
			o.settledOps++
			o.lostReplies++
			if inside[i] {
				o.lostStuck++
			}
		case known && class == impl.ClassCanceled:
			// The caller's own cancellation: a refusal to the runner.
		case known && !impl.MayHaveApplied(class):
			// Refused (a server down or loading, NOPERM, ...): surely not
			// applied there. Not settled for the runner, which excuses it
			// only under a fault it knows of.
			o.refusedCalls++
		default:
			o.unsettled++
		}
	}
}

// fill adds the outcome's figures to f.
func (o lockRaceOutcome) fill(f map[string]float64) {
	f["entered"], f["left"] = float64(o.entered), float64(o.left)
	f["counter"] = float64(o.counter)
	f["lost_updates"] = float64(o.lostUpdates())
	f["max_inside"] = float64(o.maxInside)
	f["overlaps"] = float64(o.overlaps)
	f["live_overlaps"] = float64(o.live)
	f["expiry_overlaps"] = float64(o.overlaps - o.live)
	f["expired_inside"] = float64(o.expiredInside)
	f["releases_foreign"] = float64(o.releasesForeign)
	f["releases_refused"] = float64(o.releasesRefused)
	f["foreign_deletes"] = float64(o.foreignDeletes)
	f["cycles_failed"] = float64(o.failed)
	f["holders_left_inside"] = float64(o.stuck)
	f["replies_lost_settled"] = float64(o.lostReplies)
}

// lostUpdates is the number of critical sections completed whose counter
// update was lost: sections completed minus the counter. A holder left
// inside by a failed cycle may have written the counter without leaving,
// so with such holders it is a lower bound (never below 0).
func (o lockRaceOutcome) lostUpdates() int64 {
	if o.stuck > 0 {
		return max(0, o.left-o.counter)
	}
	return o.left - o.counter
}

// counted reports whether the probe's books add up: every acquisition
// entered (but for those whose entry failed), every holder that entered
// left (but for those whose cycle failed inside), nobody else inside.
func (o lockRaceOutcome) counted() bool {
	return o.entered == o.left+o.stuck && o.stillInside == o.stuck && o.acquired == o.entered+o.acquiredNotEntered
}

// invariants judges the outcome.
func (o lockRaceOutcome) invariants() []result.Invariant {
	return []result.Invariant{
		Check("no release deleted another holder's lock", o.foreignDeletes == 0,
			"%d releases found the lock held by another holder: %d deleted it, %d were refused",
			o.releasesForeign, o.foreignDeletes, o.releasesRefused),
		o.liveProven(Check("never two holders inside on live leases", o.live == 0,
			"at most %d inside at once; %d overlaps: %d while both leases were live, %d after a lease expired under its holder",
			o.maxInside, o.overlaps, o.live, o.overlaps-o.live)),
		Check("every critical section was counted", o.counted(),
			"%d acquisitions, %d entered, %d left, %d still inside; %d cycles failed: %d left their holder inside, %d failed before entering",
			o.acquired, o.entered, o.left, o.stillInside, o.failed, o.stuck, o.acquiredNotEntered),
	}
}

// liveProven marks the live-overlap invariant, when broken, as proven
// (result.Invariant.Proven): the probe counted each overlap at the entry
// of a holder whose acquisition and entry succeeded, while another holder
// that had entered the same way was inside on a live lease. Failed
// operations cannot have made it: every lock but the naive one releases
// by compare-and-delete, so no failed call (an acquisition, a release,
// the probe's) frees another holder's lock; the naive lock's lost DEL may
// have.
func (o lockRaceOutcome) liveProven(inv result.Invariant) result.Invariant {
	inv.Proven = !inv.Holds && o.strategy != impl.LockNaive
	return inv
}

// summary is the cell's line, from the same figures as its invariants.
func (o lockRaceOutcome) summary() string {
	atLeast := ""
	if o.stuck > 0 {
		atLeast = "at least "
	}
	s := lockSummary(o.figures) + fmt.Sprintf("; max %d inside, %d overlaps (%d on live leases, %d from expiry), %s%d lost updates of %d; %d foreign deletes, %d releases refused",
		o.maxInside, o.overlaps, o.live, o.overlaps-o.live, atLeast, o.lostUpdates(), o.left, o.foreignDeletes, o.releasesRefused)
	if !o.counted() {
		s += fmt.Sprintf("; the probe's books do not add up: %d acquisitions, %d entered, %d left, %d still inside", o.acquired, o.entered, o.left, o.stillInside)
	}
	s += lostRepliesClause(o.lostReplies, o.lostStuck, "left their holder inside")
	if o.refusedCalls > 0 {
		s += fmt.Sprintf("; %d calls refused by a server", o.refusedCalls)
	}
	if o.unsettled > 0 {
		s += fmt.Sprintf("; %d failed cycles not settled", o.unsettled)
	}
	return s
}

// readIntHash reads a hash of integers; missing fields read as 0.
func readIntHash(ctx context.Context, admin redis.UniversalClient, key string) (map[string]int64, error) {
	raw, err := admin.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(raw))
	for k, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s field %s holds %q: %w", key, k, v, err)
		}
		out[k] = n
	}
	return out, nil
}
