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

// lockLoadTally is one worker's tally in a load run, on its own cache line.
type lockLoadTally struct {
	acquired, retries, maxRetries, timeouts, refused int64
	_                                                [64]byte
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
				// A wait that ended with every attempt answered "taken"
				// is the lock's own no, a refusal; one cut off mid-command
				// stays a failure.
				err, _ = impl.LockBusy(err)
				return err
			}
			t.acquired++
			t.retries += int64(lease.Retries)
			t.maxRetries = max(t.maxRetries, int64(lease.Retries))
			if err := locker.Release(ctx, lease); err != nil {
				if errors.Is(err, impl.ErrLockNotHeld) {
					t.refused++
				}
				return err
			}
			return nil
		},
		Figures: func(context.Context) (map[string]float64, error) {
			var sum lockLoadTally
			tallies.each(func(t *lockLoadTally) {
				sum.acquired += t.acquired
				sum.retries += t.retries
				sum.maxRetries = max(sum.maxRetries, t.maxRetries)
				sum.timeouts += t.timeouts
				sum.refused += t.refused
			})
			f := map[string]float64{
				"locks":                   float64(len(names)),
				"ttl_ms":                  ms(loadLockTTL),
				"acquisitions":            float64(sum.acquired),
				"retries_per_acquisition": 0,
				"retries_max":             float64(sum.maxRetries),
				"acquire_timeouts":        float64(sum.timeouts),
				"releases_refused":        float64(sum.refused),
			}
			if sum.acquired > 0 {
				f["retries_per_acquisition"] = float64(sum.retries) / float64(sum.acquired)
			}
			return f, nil
		},
	}, nil
}
