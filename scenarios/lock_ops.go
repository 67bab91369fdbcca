package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
)

func init() {
	RegisterOperation(Operation{
		Name:        "lock.acquire-release",
		Description: "take a lock (waiting for it) and release it at once; contention set by the number of distinct locks",
		Strategies:  []string{impl.LockToken, impl.LockFenced, impl.LockNaive, impl.LockRedsync, impl.LockRedislock, impl.LockRueidislock},
		Setup:       setupLockAcquireRelease,
	})
}

// Load parameters of lock.acquire-release. The lease is a whole second so
// that the naive lock sends the seed's exact SET locked NX EX 1; it only
// matters if a holder stalls, since each one releases at once.
const (
	loadLockTTL            = time.Second
	loadLockAcquireTimeout = 5 * time.Second
)

// loadSettleTimeout bounds the settle of one lost reply.
const loadSettleTimeout = time.Second

// lockLoadTally is one worker's tally in a load run, on its own cache line.
type lockLoadTally struct {
	acquired, retries, maxRetries, timeouts, refused int64
	// Lost replies (impl.SettleLease): acquisitions and releases that
	// failed with their outcome unknown, busy waits checked, and what the
	// server said of them.
	acquireLost, acquireLostHeld int64
	busyChecked, busyHeld        int64
	releaseLost, releaseLostHeld int64
	settled, unsettled           int64
	_                            [64]byte
}

func (t *lockLoadTally) add(o *lockLoadTally) {
	t.acquired += o.acquired
	t.retries += o.retries
	t.maxRetries = max(t.maxRetries, o.maxRetries)
	t.timeouts += o.timeouts
	t.refused += o.refused
	t.acquireLost += o.acquireLost
	t.acquireLostHeld += o.acquireLostHeld
	t.busyChecked += o.busyChecked
	t.busyHeld += o.busyHeld
	t.releaseLost += o.releaseLost
	t.releaseLostHeld += o.releaseLostHeld
	t.settled += o.settled
	t.unsettled += o.unsettled
}

// lockLoadSettler settles, against the server, the lock operations of a
// load cell whose outcome is unknown (impl.SettleLease), right after they
// fail: the lock's key keeps the lease's token only until its TTL.
type lockLoadSettler struct {
	locker   impl.Locker
	classify func(error) string
}

// settleCtx is the context of a settle: it outlives the run's end (a
// lease left held would outlive it too) but not loadSettleTimeout.
func settleCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), loadSettleTimeout)
}

// acquireFailed returns what the engine is to count for a failed
// Acquire. A wait the lock reported "busy" is a refusal (impl.LockBusy)
// unless its lease's token is found on the lock — redsync reports a try
// cut off by the deadline as busy — and then it is a failure, settled. An
// acquisition whose reply was lost is settled: either it had taken the
// lock (held; paybench releases it) or it had not (gone). A failure that
// surely did not apply (refused by the server) or that cannot be settled
// (the naive lock's shared value, a read-back that failed or came too
// late) stays a failure the cell does not settle.
func (s lockLoadSettler) acquireFailed(ctx context.Context, t *lockLoadTally, lease impl.Lease, err error) error {
	busyErr, busy := impl.LockBusy(err)
	if ctx.Err() != nil {
		return busyErr // the run is over: the engine does not count it
	}
	unknown := !busy && unknownOutcome(s.classify(err))
	if !busy && !unknown {
		return err
	}
	sctx, cancel := settleCtx(ctx)
	state, _ := impl.SettleLease(sctx, s.locker, lease)
	cancel()
	if busy {
		if state == impl.LeaseUnknown {
			return busyErr // as the lock said: every attempt answered "taken"
		}
		t.busyChecked++
		if state == impl.LeaseGone {
			return busyErr
		}
		// The lock held this acquisition's token: not the lock's no.
		t.busyHeld++
		return s.count(ctx, t, err)
	}
	t.acquireLost++
	return s.settled(ctx, t, state, &t.acquireLostHeld, err)
}

// releaseFailed returns what the engine is to count for a failed
// Release: a refusal (impl.ErrLockNotHeld) as it is; a release whose
// reply was lost, settled — the lock still held the token (the release
// had not applied; paybench releases it) or not (it had).
func (s lockLoadSettler) releaseFailed(ctx context.Context, t *lockLoadTally, lease impl.Lease, err error) error {
	if errors.Is(err, impl.ErrLockNotHeld) {
		t.refused++
		return err
	}
	if ctx.Err() != nil || !unknownOutcome(s.classify(err)) {
		return err
	}
	t.releaseLost++
	sctx, cancel := settleCtx(ctx)
	state, _ := impl.SettleLease(sctx, s.locker, lease)
	cancel()
	return s.settled(ctx, t, state, &t.releaseLostHeld, err)
}

// settled tallies what a settle found of a failure of unknown outcome:
// held (counted in *held too) and gone are settled, unknown is not.
func (s lockLoadSettler) settled(ctx context.Context, t *lockLoadTally, state impl.LeaseState, held *int64, err error) error {
	switch state {
	case impl.LeaseHeld:
		*held++
		return s.count(ctx, t, err)
	case impl.LeaseGone:
		return s.count(ctx, t, err)
	}
	t.unsettled++
	return err
}

// count tallies err, a failure of unknown outcome now settled, as
// settled — unless the run ended meanwhile, when the engine will not
// count the failure either.
func (s lockLoadSettler) count(ctx context.Context, t *lockLoadTally, err error) error {
	if ctx.Err() == nil && unknownOutcome(s.classify(err)) {
		t.settled++
	}
	return err
}

func setupLockAcquireRelease(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	lb, ok := env.Backend.(impl.LockBackend)
	if !ok {
		return nil, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	locker, err := lb.Lock(strategy, impl.LockOptions{Keys: env.Keys, TTL: loadLockTTL})
	if err != nil {
		return nil, err
	}
	names := make([]string, max(env.KeyCount, 1))
	for i := range names {
		names[i] = "lock-" + strconv.Itoa(i)
	}
	tallies := newWorkerSlots(env.Workers, func() *lockLoadTally { return new(lockLoadTally) })
	settler := lockLoadSettler{locker: locker, classify: env.Backend.Classify}
	total := func() (sum lockLoadTally) {
		tallies.each(sum.add)
		return sum
	}
	return &Load{
		Params: librarySettings(locker),
		Op: func(ctx context.Context, w *bench.Worker) error {
			t := tallies.get(w.ID)
			if !w.Measuring() {
				t = &lockLoadTally{} // warm-up calls are not tallied
			}
			actx, cancel := context.WithTimeout(ctx, loadLockAcquireTimeout)
			lease, err := locker.Acquire(actx, names[env.Pick(w)])
			cancel()
			if err != nil {
				if errors.Is(err, impl.ErrLockNotAcquired) {
					t.timeouts++
				}
				return settler.acquireFailed(ctx, t, lease, err)
			}
			t.acquired++
			t.retries += int64(lease.Retries)
			t.maxRetries = max(t.maxRetries, int64(lease.Retries))
			if err := locker.Release(ctx, lease); err != nil {
				return settler.releaseFailed(ctx, t, lease, err)
			}
			return nil
		},
		Figures: func(context.Context) (map[string]float64, error) {
			sum := total()
			f := map[string]float64{
				"locks":                   float64(len(names)),
				"ttl_ms":                  ms(loadLockTTL),
				"acquisitions":            float64(sum.acquired),
				"retries_per_acquisition": 0,
				"retries_max":             float64(sum.maxRetries),
				"acquire_timeouts":        float64(sum.timeouts),
				"releases_refused":        float64(sum.refused),
				"acquire_replies_lost":    float64(sum.acquireLost),
				"acquire_lost_held":       float64(sum.acquireLostHeld),
				"busy_checked":            float64(sum.busyChecked),
				"busy_held":               float64(sum.busyHeld),
				"release_replies_lost":    float64(sum.releaseLost),
				"release_lost_held":       float64(sum.releaseLostHeld),
				"lost_unsettled":          float64(sum.unsettled),
			}
			if sum.acquired > 0 {
				f["retries_per_acquisition"] = float64(sum.retries) / float64(sum.acquired)
			}
			return f, nil
		},
		Settled: func() int64 { return total().settled },
	}, nil
}
