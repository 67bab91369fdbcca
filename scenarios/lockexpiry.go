package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

func init() { Register(func() Scenario { return newLockExpiry() }) }

// LockExpiry is the paused holder: W workers take one lock and write to a
// protected resource while holding it; now and then a holder pauses (a
// simulated GC pause or stalled VM) for longer than its lease, another
// worker takes the lock and writes, and then the paused holder wakes and
// writes too. Only a resource that checks fencing tokens can refuse the
// stale write.
//
// One measured operation is one holder's cycle, every Redis call of it
// through the backend under test: Locker.Acquire (its waits included), the
// INCR of the acquisition counter, the work or the pause (with a GET of
// the counter after a pause), Locker.Write and Locker.Release. The counter
// orders acquisitions for locks without fencing tokens and must be taken
// while the lock is held, so it runs on the holder's own client
// (impl.ScriptBackend).
type LockExpiry struct {
	// TTL is the lease length.
	TTL time.Duration
	// Pause is how long a pausing holder stops between taking the lock
	// and writing; longer than TTL.
	Pause time.Duration
	// PauseRate is the share of acquisitions whose holder pauses.
	PauseRate float64
	// Work is how long a holder that does not pause works before writing.
	Work time.Duration
	// AcquireTimeout bounds one acquisition's wait.
	AcquireTimeout time.Duration
}

func newLockExpiry() *LockExpiry {
	return &LockExpiry{TTL: 100 * time.Millisecond, Pause: 300 * time.Millisecond, PauseRate: 0.1, Work: 2 * time.Millisecond, AcquireTimeout: time.Second}
}

// Name implements Scenario.
func (s *LockExpiry) Name() string { return "lock-expiry" }

// Description implements Scenario.
func (s *LockExpiry) Description() string {
	return "a holder pauses past its lease while another takes the lock; only fencing tokens stop its stale write"
}

// Strategies implements Scenario.
func (s *LockExpiry) Strategies() []Strategy {
	return append([]Strategy{
		{Name: impl.LockNaive, Expect: result.Break, Note: "the seed's lock: the stale holder's write lands"},
		{Name: impl.LockToken, Expect: result.Break, Note: "a correct lease lock: the stale holder's write still lands"},
		{Name: impl.LockFenced, Expect: result.Hold, Note: "fencing token checked by the resource: stale writes rejected"},
	}, lockLibraryStrategies(true)...)
}

// Flags implements Scenario.
func (s *LockExpiry) Flags(fs *pflag.FlagSet) {
	fs.DurationVar(&s.TTL, "ttl", s.TTL, "lease length of the lock")
	fs.DurationVar(&s.Pause, "pause", s.Pause, "how long a pausing holder stops before it writes (longer than --ttl)")
	fs.Float64Var(&s.PauseRate, "pause-rate", s.PauseRate, "share of acquisitions whose holder pauses (0..1)")
	fs.DurationVar(&s.Work, "work", s.Work, "how long other holders work before writing")
	fs.DurationVar(&s.AcquireTimeout, "acquire-timeout", s.AcquireTimeout, "longest wait for the lock before an attempt is counted as timed out")
}

// Validate implements Scenario.
func (s *LockExpiry) Validate() error {
	if err := validateLockParams(s.TTL, s.AcquireTimeout); err != nil {
		return err
	}
	switch {
	case s.Pause <= s.TTL:
		return fmt.Errorf("--pause %s must be longer than --ttl %s: the holder must outlive its lease", s.Pause, s.TTL)
	case s.PauseRate <= 0 || s.PauseRate > 1:
		return fmt.Errorf("--pause-rate must be in (0, 1], got %g", s.PauseRate)
	case s.Work < 0:
		return fmt.Errorf("--work must be >= 0, got %s", s.Work)
	}
	return nil
}

// Params implements Scenario.
func (s *LockExpiry) Params() map[string]string {
	return map[string]string{
		"ttl":             s.TTL.String(),
		"pause":           s.Pause.String(),
		"pause_rate":      strconv.FormatFloat(s.PauseRate, 'g', -1, 64),
		"work":            s.Work.String(),
		"acquire_timeout": s.AcquireTimeout.String(),
	}
}

const (
	lockExpiryName     = "expiry"
	lockExpiryResource = "ledger"
)

// Run implements Scenario.
func (s *LockExpiry) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	if strategy == impl.LockRueidislock && impl.LibraryError("lock", env.Backend.Name(), strategy) == nil {
		// The scenario's pause is a sleep of the holder's goroutine: the
		// library's own goroutine keeps extending the lease meanwhile, so
		// no lease would ever expire under a paused holder and the cell
		// would judge nothing. (A real stop of the whole process would
		// stop that goroutine too; and with no fencing token, the stale
		// write would then land.)
		return cell, fmt.Errorf("%s: lock %s: %w: it extends its lease from a background goroutine that a simulated pause cannot stop, and it issues no fencing token", env.Backend.Name(), strategy, impl.ErrNotSupported)
	}
	lopts := impl.LockOptions{TTL: s.TTL}
	r, cfg, err := newLockRun(env, strategy, lopts, lockExpiryName, s.AcquireTimeout)
	if err != nil {
		return cell, err
	}
	libraryParams(&cell, r.locker)
	r.recordHistory(env, strategy, lopts, lockHistoryOps(cfg.Duration, s.Work, 3))
	// The holders' acquisition order, for locks that issue no fencing
	// token: a server-side counter each holder increments as soon as it
	// holds the lock.
	epochKey := env.Keys.Tagged("lockexpiry", lockExpiryResource, "epoch")
	sb, ok := env.Backend.(impl.ScriptBackend)
	if !ok {
		return cell, fmt.Errorf("%s: scripts: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	epochIncr, epochGet := sb.Script(counterIncrSrc), sb.Script(counterGetSrc)
	admin := env.Admin

	// Each worker notes its failed cycles (where, and the acquisition's
	// epoch once it has one), to settle them against the resource's log
	// after the run.
	fails := make([][]lockExpiryFailure, len(r.tallies))
	r.start(cfg)
	stats, runErr := env.Drive(ctx, cfg, func(ctx context.Context, w *bench.Worker) error {
		fail := func(stage string, epoch int64, err error) error {
			fails[w.ID] = append(fails[w.ID], lockExpiryFailure{stage: stage, epoch: epoch, err: err})
			return err
		}
		lease, ok, err := r.acquire(ctx, w)
		if err != nil {
			return fail(lockStageAcquire, 0, err)
		}
		if !ok {
			return nil
		}
		acquired := time.Now()
		incr, err := epochIncr.Run(ctx, []string{epochKey})
		if err != nil {
			return fail(lockExpiryStageEpoch, 0, fmt.Errorf("epoch: %w", err))
		}
		if len(incr) != 1 {
			return fail(lockExpiryStageEpoch, 0, fmt.Errorf("epoch: replied %v", incr))
		}
		epoch := incr[0]
		t := &r.tallies[w.ID]
		pause := w.Rand.Float64() < s.PauseRate
		d := s.Work
		if pause {
			d = s.Pause
			t.paused++
		}
		if err := impl.Sleep(ctx, d); err != nil {
			return fail(lockExpiryStageEpoch, epoch, err) // the run ended (canceled)
		}
		if pause {
			newest, err := epochGet.Run(ctx, []string{epochKey})
			switch {
			case err != nil:
				return fail(lockExpiryStageEpoch, epoch, fmt.Errorf("epoch after the pause: %w", err))
			case len(newest) != 1:
				return fail(lockExpiryStageEpoch, epoch, fmt.Errorf("epoch after the pause: replied %v", newest))
			case newest[0] > epoch:
				t.overtaken++ // another holder took the lock during the pause
			}
		}
		hl := r.hist.log(w)
		call := hl.Now()
		err = r.locker.Write(ctx, lockExpiryResource, lease, strconv.FormatInt(epoch, 10))
		r.hist.record(hl, histcheck.LockWrite, w.Seq, lease, call, hl.Now(), err, impl.ErrStaleFence)
		switch {
		case errors.Is(err, impl.ErrStaleFence):
			t.staleRejected++
		case err != nil:
			return fail(lockExpiryStageWrite, epoch, err)
		}
		if _, err = r.release(ctx, w, lease, acquired); err != nil {
			return fail(lockStageRelease, epoch, err)
		}
		return nil
	})
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)
	cell.History = r.hist.result(ctx, env.Common.History)
	sum := lockTallies(r.tallies)
	f := lockFigures(stats, sum, s.TTL)
	f["pause_ms"], f["pause_rate"], f["work_ms"] = ms(s.Pause), s.PauseRate, ms(s.Work)
	f["pauses"] = float64(sum.paused)
	f["pauses_overtaken"] = float64(sum.overtaken)
	f["releases_refused"] = float64(sum.refused)
	cell.Figures = f

	// From here on paybench reads the resource back: a failure of its own
	// is not the lock's, and leaves the cell INCONCLUSIVE with the figures
	// above.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	res, err := readIntHash(vctx, admin, impl.ResourceKey(env.Keys, lockExpiryResource))
	if err != nil {
		return cell, JudgementError(fmt.Errorf("read resource: %w", err))
	}
	entries, err := admin.LRange(vctx, impl.ResourceLogKey(env.Keys, lockExpiryResource), 0, -1).Result()
	if err != nil {
		return cell, JudgementError(fmt.Errorf("read resource log: %w", err))
	}
	finalValue, err := admin.HGet(vctx, impl.ResourceKey(env.Keys, lockExpiryResource), impl.ResourceValue).Result()
	if err != nil && len(entries) > 0 {
		return cell, JudgementError(fmt.Errorf("read resource value: %w", err))
	}
	audit, err := auditResourceLog(entries)
	if err != nil {
		return cell, JudgementError(err)
	}

	out := lockExpiryOutcome{
		figures: f, ttl: s.TTL, paused: sum.paused, overtaken: sum.overtaken, refused: sum.refused,
		entries: int64(len(entries)), writes: res[impl.ResourceWrites], rejected: res[impl.ResourceRejected],
		resourceFence: res[impl.ResourceFence], finalValue: finalValue, audit: audit,
	}
	var failed []lockExpiryFailure
	for _, fs := range fails {
		failed = append(failed, fs...)
	}
	out.settle(failed, strategy == impl.LockNaive, env.Backend.Classify)
	out.fill(f)
	cell.Settled = out.settledOps
	cell.Invariants = out.invariants()
	cell.Summary = out.summary()
	return cell, nil
}

// lockExpiryOutcome is what a lock-expiry cell's verdict is made of: its
// figures, its invariants and its summary are all computed from it.
type lockExpiryOutcome struct {
	figures                   map[string]float64 // lockFigures, for the summary's head
	ttl                       time.Duration
	paused, overtaken         int64
	refused                   int64 // releases refused
	entries, writes, rejected int64 // the resource's log length and counters
	resourceFence             int64 // the newest token the resource accepted
	finalValue                string
	audit                     resourceAudit

	// The failed cycles (settle): lostReplies of unknown outcome were
	// settled, lostLanded of them writes found in the resource's log;
	// refusedCalls were refused by a server; unsettled could not be.
	failed, lostReplies, lostLanded int64
	refusedCalls, unsettled         int64
	settledOps                      int64
}

// Where a lock-expiry cycle can fail besides lockStageAcquire and
// lockStageRelease.
const (
	lockExpiryStageEpoch = "epoch" // the epoch's INCR, the pause, the epoch's read after it
	lockExpiryStageWrite = "write" // Locker.Write of the resource
)

// lockExpiryFailure is one cycle that failed, and where.
type lockExpiryFailure struct {
	stage string
	epoch int64 // the acquisition's epoch, once taken (0 before)
	err   error
}

// settle accounts for the failed cycles. Every invariant of the cell is
// read from the resource's log, so a failed cycle's effect on the verdict
// is known wherever it failed: before its write it wrote nothing (a lost
// acquisition or epoch INCR leaves at most a lease nobody uses, which
// expires, and an epoch nobody writes); a write whose reply was lost
// landed exactly when the log holds its epoch, and the log is what is
// judged; a release by compare-and-delete frees only its own lease.
// Only the naive lock's lost release (an unconditional DEL that may have
// freed another holder's lock) cannot be settled. Failures of unknown
// outcome (unknownOutcome) count as settled, for Cell.Settled; a failure
// that surely did not apply (NOPERM, ...) still fails the cell.
func (o *lockExpiryOutcome) settle(failed []lockExpiryFailure, naive bool, classify func(error) string) {
	landed := map[string]bool{}
	for _, e := range o.audit.values {
		landed[e] = true
	}
	for _, f := range failed {
		o.failed++
		known := !(f.stage == lockStageRelease && naive)
		switch class := classify(f.err); {
		case known && unknownOutcome(class):
			o.settledOps++
			o.lostReplies++
			if f.stage == lockExpiryStageWrite && landed[strconv.FormatInt(f.epoch, 10)] {
				o.lostLanded++
			}
		case known && class == impl.ClassCanceled:
			// The caller's own cancellation: a refusal to the runner.
		case known && !impl.MayHaveApplied(class):
			// Refused (a server down or loading, NOPERM, ...): surely not
			// applied. The runner excuses it only under a fault it knows
			// of; else it still withholds the verdict.
			o.refusedCalls++
		default:
			o.unsettled++
		}
	}
}

// fill adds the outcome's figures to f.
func (o lockExpiryOutcome) fill(f map[string]float64) {
	f["writes_landed"] = float64(o.entries)
	f["writes_counted"] = float64(o.writes)
	f["stale_writes_landed"] = float64(o.audit.stale)
	f["stale_writes_rejected"] = float64(o.rejected)
	f["cycles_failed"] = float64(o.failed)
	f["replies_lost_settled"] = float64(o.lostReplies)
	f["lost_writes_landed"] = float64(o.lostLanded)
}

// endsNewest reports whether the resource holds the newest holder's write.
func (o lockExpiryOutcome) endsNewest() bool {
	return o.entries == 0 || o.finalValue == o.audit.lastValue && o.audit.lastKey == o.audit.maxKey
}

// fenceOrdered reports whether the resource's log is in fencing order.
func (o lockExpiryOutcome) fenceOrdered() bool {
	return o.audit.fenceOrdered && o.resourceFence == o.audit.maxFence
}

// invariants judges the outcome.
func (o lockExpiryOutcome) invariants() []result.Invariant {
	return []result.Invariant{
		Check("no stale write landed", o.audit.stale == 0,
			"%d of %d writes in the resource's log landed after a newer holder's write (first: %s); the resource rejected %d",
			o.audit.stale, o.entries, o.audit.firstStale, o.rejected),
		Check("resource ends with the newest holder's write", o.endsNewest(),
			"final value %q from acquisition %d; newest acquisition that wrote: %d", o.finalValue, o.audit.lastKey, o.audit.maxKey),
		Check("resource holds writes in fencing order", o.fenceOrdered(),
			"log fences non-decreasing: %t; resource's newest token %d, log's %d", o.audit.fenceOrdered, o.resourceFence, o.audit.maxFence),
	}
}

// summary is the cell's line, from the same figures as its invariants.
func (o lockExpiryOutcome) summary() string {
	s := lockSummary(o.figures) + fmt.Sprintf("; %d pauses past the %s lease (%d overtaken): %d stale writes landed, %d rejected; %d releases refused",
		o.paused, o.ttl, o.overtaken, o.audit.stale, o.rejected, o.refused)
	if !o.endsNewest() {
		s += fmt.Sprintf("; the resource ends with acquisition %d's write, not the newest (%d)", o.audit.lastKey, o.audit.maxKey)
	}
	if !o.fenceOrdered() {
		s += "; the resource's log is out of fencing order"
	}
	s += lostRepliesClause(o.lostReplies, o.lostLanded, "written the resource")
	if o.refusedCalls > 0 {
		s += fmt.Sprintf("; %d calls refused by a server", o.refusedCalls)
	}
	if o.unsettled > 0 {
		s += fmt.Sprintf("; %d failed cycles not settled", o.unsettled)
	}
	return s
}

// resourceAudit is what a resource's log shows.
type resourceAudit struct {
	// stale counts entries that landed after an entry of a newer
	// acquisition.
	stale      int
	firstStale string
	// maxKey is the newest acquisition that wrote; lastKey and lastValue
	// are the last entry's.
	maxKey, lastKey int64
	lastValue       string
	// values are the entries' values (their holders' epochs), in order.
	values []string
	// fenceOrdered reports the fences never going down; maxFence is the
	// largest.
	fenceOrdered bool
	maxFence     int64
}

// auditResourceLog reads the log entries "<fence>:<epoch>" in landing
// order. An entry's acquisition order is its fence when the lock issued
// one (the lock's own order, taken atomically with the lock), else the
// epoch its holder took right after acquiring.
func auditResourceLog(entries []string) (resourceAudit, error) {
	a := resourceAudit{fenceOrdered: true, firstStale: "none"}
	var lastFence int64
	for i, e := range entries {
		fence, value, err := impl.ParseResourceEntry(e)
		if err != nil {
			return a, err
		}
		epoch, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return a, fmt.Errorf("resource log entry %q: epoch: %w", e, err)
		}
		key := epoch
		if fence > 0 {
			key = fence
		}
		if key < a.maxKey {
			if a.stale == 0 {
				a.firstStale = fmt.Sprintf("entry %d from acquisition %d after %d", i+1, key, a.maxKey)
			}
			a.stale++
		}
		a.maxKey = max(a.maxKey, key)
		a.lastKey, a.lastValue = key, value
		a.values = append(a.values, value)
		if fence < lastFence {
			a.fenceOrdered = false
		}
		lastFence = fence
		a.maxFence = max(a.maxFence, fence)
	}
	return a, nil
}
