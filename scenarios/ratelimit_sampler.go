package scenarios

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// limitMemorySampler keeps the peak MEMORY USAGE of each user's limiter
// state, and judges the expiry of the users' live limiter keys as it
// samples (readLimitExpiries): keys that expire within a period of their
// last use would be gone by the time the run is over.
type limitMemorySampler struct {
	peak []int64
	// live returns the keys the users' state lives in now (for
	// fixed-window, the counters of the windows around the server's
	// current one); nil: no expiry is read.
	live   func() []string
	expiry limitExpiryCheck
	err    error
}

// run samples every half period until ctx ends.
func (m *limitMemorySampler) run(ctx context.Context, admin redis.UniversalClient, strategy string, o impl.LimitOptions, users []string) {
	t := time.NewTicker(o.Period / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, u := range users {
			n, err := limiterMemory(ctx, admin, strategy, o, u)
			if err != nil {
				if ctx.Err() == nil {
					m.err = err
				}
				return
			}
			m.peak[i] = max(m.peak[i], n)
		}
		if m.live == nil {
			continue
		}
		e, err := readLimitExpiries(ctx, admin, o, m.live())
		if err != nil {
			if ctx.Err() == nil {
				m.err = err
			}
			return
		}
		m.expiry.add(e)
	}
}

// mean is the mean of the users' peaks, over the users that had state.
func (m *limitMemorySampler) mean() float64 {
	var sum, n int64
	for _, p := range m.peak {
		if p > 0 {
			sum += p
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

// limiterMemory returns MEMORY USAGE of the key the strategy decides on
// for user (for fixed-window, the counter of the server's current window,
// or of the one before when the current has none yet), or 0 when it has
// expired.
func limiterMemory(ctx context.Context, admin redis.UniversalClient, strategy string, o impl.LimitOptions, user string) (int64, error) {
	keys := []string{impl.LimitKey(o.Keys, strategy, user)}
	if strategy == impl.LimitFixedWindow {
		now, err := admin.Time(ctx).Result()
		if err != nil {
			return 0, fmt.Errorf("read the server's TIME: %w", err)
		}
		w := now.UnixMicro() / o.Period.Microseconds()
		keys = []string{impl.LimitWindowKey(o.Keys, user, w), impl.LimitWindowKey(o.Keys, user, w-1)}
	}
	for _, key := range keys {
		n, err := admin.MemoryUsage(ctx, key, 0).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("MEMORY USAGE %s: %w", key, err)
		}
		return n, nil
	}
	return 0, nil
}
