package goredis

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The lock scripts, shared by every Client (EVALSHA with EVAL fallback).
var (
	lockReleaseScript       = redis.NewScript(scripts.LockRelease)
	lockRefreshScript       = redis.NewScript(scripts.LockRefresh)
	lockFencedAcquireScript = redis.NewScript(scripts.LockFencedAcquire)
	lockFencedWriteScript   = redis.NewScript(scripts.LockFencedWrite)
)

// Compile-time checks: every strategy is an impl.Locker.
var (
	_ impl.LockBackend = (*Client)(nil)
	_ impl.Locker      = (*naiveLock)(nil)
	_ impl.Locker      = (*tokenLock)(nil)
	_ impl.Locker      = (*fencedLock)(nil)
	_ impl.LockSettler = (*tokenLock)(nil)
	_ impl.LockSettler = (*fencedLock)(nil)
)

// Lock returns the named lock strategy (one of impl.LockStrategies, or
// the library strategies built on go-redis: impl.LockRedsync and
// impl.LockRedislock; rueidislock is refused with impl.ErrNotSupported).
// Zero options take their defaults (impl.LockOptions.WithDefaults);
// opts.Keys is required. With opts.Watchdog the locker is wrapped by
// impl.WithWatchdog; the naive lock, which cannot refresh, refuses it with
// impl.ErrNotSupported.
func (c *Client) Lock(strategy string, opts impl.LockOptions) (impl.Locker, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("goredis: lock: %w", err)
	}
	base := lockBase{rdb: c.rdb, opts: opts, name: strategy}
	var l impl.Locker
	switch strategy {
	case impl.LockNaive:
		if opts.Watchdog {
			return nil, fmt.Errorf("goredis: lock %s: watchdog: %w (the seed's lock has no refresh)", strategy, impl.ErrNotSupported)
		}
		return &naiveLock{base}, nil
	case impl.LockToken:
		l = &tokenLock{base}
	case impl.LockFenced:
		l = &fencedLock{tokenLock{base}}
	case impl.LockRedsync, impl.LockRedislock:
		l = c.libraryLock(strategy, base)
	default:
		if err := impl.LibraryError("lock", impl.GoRedis, strategy); err != nil {
			return nil, err
		}
		return nil, impl.StrategyError("lock", strategy, impl.AllLockStrategies())
	}
	if opts.Watchdog {
		l = impl.WithWatchdog(l, opts.WatchdogEvery)
	}
	return l, nil
}

// lockBase is what every lock strategy shares.
type lockBase struct {
	rdb  redis.UniversalClient
	opts impl.LockOptions
	name string
}

func (l *lockBase) errorf(op, name string, err error) error {
	return fmt.Errorf("goredis lock %s: %s %q: %w", l.name, op, name, err)
}

func (l *lockBase) lease(name, token string) impl.Lease {
	return impl.Lease{Name: name, Token: token, TTL: l.opts.TTL}
}

// writeUnfenced stores value in the resource with no check, in one
// MULTI/EXEC: what a resource that knows nothing of fencing does.
func (l *lockBase) writeUnfenced(ctx context.Context, resource string, lease impl.Lease, value string) error {
	key, logKey := impl.ResourceKey(l.opts.Keys, resource), impl.ResourceLogKey(l.opts.Keys, resource)
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, impl.ResourceValue, value)
		p.HIncrBy(ctx, key, impl.ResourceWrites, 1)
		p.RPush(ctx, logKey, impl.FormatResourceEntry(lease.Fence, value))
		p.LTrim(ctx, logKey, -impl.ResourceLogMax, -1)
		return nil
	})
	if err != nil {
		return l.errorf("write", resource, err)
	}
	return nil
}

// naiveLock is the seed's get_lock / release_lock: SET key "locked" NX EX,
// polled every opts.Poll, released with DEL whoever holds it.
type naiveLock struct{ lockBase }

// TryAcquire runs SET key "locked" NX with the TTL (go-redis sends EX for
// a whole number of seconds, as the seed does, PX otherwise).
func (l *naiveLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	ok, err := l.rdb.SetNX(ctx, impl.LockKey(l.opts.Keys, name), impl.NaiveLockValue, l.opts.TTL).Result()
	if err != nil {
		return impl.Lease{}, false, l.errorf("acquire", name, err)
	}
	if !ok {
		return impl.Lease{}, false, nil
	}
	return l.lease(name, impl.NaiveLockValue), true, nil
}

// Acquire retries TryAcquire every opts.Poll until it succeeds or ctx ends
// (the seed loops forever).
func (l *naiveLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	return impl.AcquireLoop(ctx, name, func(ctx context.Context) (impl.Lease, bool, error) {
		return l.TryAcquire(ctx, name)
	}, func(int) time.Duration { return l.opts.Poll })
}

// Release deletes the lock unconditionally: after its lease expired, a
// holder deletes the next holder's lock.
func (l *naiveLock) Release(ctx context.Context, lease impl.Lease) error {
	if err := l.rdb.Del(ctx, impl.LockKey(l.opts.Keys, lease.Name)).Err(); err != nil {
		return l.errorf("release", lease.Name, err)
	}
	return nil
}

// Refresh is not offered: the seed's lock has none.
func (l *naiveLock) Refresh(_ context.Context, lease impl.Lease) error {
	return l.errorf("refresh", lease.Name, impl.ErrNotSupported)
}

// Write stores value in the resource unconditionally.
func (l *naiveLock) Write(ctx context.Context, resource string, lease impl.Lease, value string) error {
	return l.writeUnfenced(ctx, resource, lease, value)
}

// tokenLock is SET key <random token> NX PX, with compare-and-delete and
// compare-and-pexpire scripts for release and refresh.
type tokenLock struct{ lockBase }

// TryAcquire runs SET key <new token> NX with the TTL.
func (l *tokenLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	token, sent := rand.Text(), time.Now()
	ok, err := l.rdb.SetNX(ctx, impl.LockKey(l.opts.Keys, name), token, l.opts.TTL).Result()
	if err != nil {
		return impl.Lease{Name: name, Token: token, TTL: l.opts.TTL, Sent: sent}, false, l.errorf("acquire", name, err)
	}
	if !ok {
		return impl.Lease{}, false, nil
	}
	lease := l.lease(name, token)
	lease.Sent = sent
	return lease, true, nil
}

// Acquire retries TryAcquire with capped exponential back-off and full
// jitter (impl.LockOptions.Backoff) until it succeeds or ctx ends.
func (l *tokenLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	return impl.AcquireLoop(ctx, name, func(ctx context.Context) (impl.Lease, bool, error) {
		return l.TryAcquire(ctx, name)
	}, l.opts.Backoff)
}

// Settle implements impl.LockSettler: the compare-and-delete script.
func (l *tokenLock) Settle(ctx context.Context, lease impl.Lease) (bool, error) {
	return l.settle(ctx, impl.LockKey(l.opts.Keys, lease.Name), lease)
}

// settle deletes key if it holds lease.Token and reports whether it did.
func (l *lockBase) settle(ctx context.Context, key string, lease impl.Lease) (bool, error) {
	ok, err := compareDelete(ctx, l.rdb, key, lease.Token)
	if err != nil {
		return false, l.errorf("settle", lease.Name, err)
	}
	return ok, nil
}

// compareDelete runs the compare-and-delete script on rdb: it deletes key
// if it holds token and reports whether it did.
func compareDelete(ctx context.Context, rdb redis.Scripter, key, token string) (bool, error) {
	n, err := lockReleaseScript.Run(ctx, rdb, []string{key}, token).Int64()
	return n == 1, err
}

// Release runs the compare-and-delete script.
func (l *tokenLock) Release(ctx context.Context, lease impl.Lease) error {
	deleted, err := compareDelete(ctx, l.rdb, impl.LockKey(l.opts.Keys, lease.Name), lease.Token)
	if err != nil {
		return l.errorf("release", lease.Name, err)
	}
	if !deleted {
		return l.errorf("release", lease.Name, impl.ErrLockNotHeld)
	}
	return nil
}

// Refresh runs the compare-and-pexpire script with the lease's TTL.
func (l *tokenLock) Refresh(ctx context.Context, lease impl.Lease) error {
	n, err := lockRefreshScript.Run(ctx, l.rdb, []string{impl.LockKey(l.opts.Keys, lease.Name)},
		lease.Token, lease.TTL.Milliseconds()).Int64()
	if err != nil {
		return l.errorf("refresh", lease.Name, err)
	}
	if n != 1 {
		return l.errorf("refresh", lease.Name, impl.ErrLockNotHeld)
	}
	return nil
}

// Write stores value in the resource unconditionally: a token alone does
// not let the resource tell a stale holder from the current one.
func (l *tokenLock) Write(ctx context.Context, resource string, lease impl.Lease, value string) error {
	return l.writeUnfenced(ctx, resource, lease, value)
}

// fencedLock is the token lock whose acquire also issues a fencing token,
// and whose resource rejects writes with an older one.
type fencedLock struct{ tokenLock }

// TryAcquire runs scripts.LockFencedAcquire: SET NX PX and INCR of the
// fence counter in one step.
func (l *fencedLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	token, sent := rand.Text(), time.Now()
	keys := []string{impl.LockKey(l.opts.Keys, name), impl.LockFenceKey(l.opts.Keys, name)}
	fence, err := lockFencedAcquireScript.Run(ctx, l.rdb, keys, token, l.opts.TTL.Milliseconds()).Int64()
	if err != nil {
		return impl.Lease{Name: name, Token: token, TTL: l.opts.TTL, Sent: sent}, false, l.errorf("acquire", name, err)
	}
	if fence == 0 {
		return impl.Lease{}, false, nil
	}
	lease := l.lease(name, token)
	lease.Fence, lease.Sent = fence, sent
	return lease, true, nil
}

// Acquire retries TryAcquire with capped exponential back-off and full
// jitter until it succeeds or ctx ends.
func (l *fencedLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	return impl.AcquireLoop(ctx, name, func(ctx context.Context) (impl.Lease, bool, error) {
		return l.TryAcquire(ctx, name)
	}, l.opts.Backoff)
}

// Write runs scripts.LockFencedWrite; a stale fencing token yields an error
// wrapping impl.ErrStaleFence.
func (l *fencedLock) Write(ctx context.Context, resource string, lease impl.Lease, value string) error {
	if lease.Fence <= 0 {
		return l.errorf("write", resource, fmt.Errorf("%w: lease has no fencing token", impl.ErrStaleFence))
	}
	keys := []string{impl.ResourceKey(l.opts.Keys, resource), impl.ResourceLogKey(l.opts.Keys, resource)}
	res, err := lockFencedWriteScript.Run(ctx, l.rdb, keys, lease.Fence, value, impl.ResourceLogMax).Int64Slice()
	if err != nil {
		return l.errorf("write", resource, err)
	}
	if len(res) != 2 {
		return l.errorf("write", resource, fmt.Errorf("script replied %v, want {ok, fence}", res))
	}
	if res[0] != 1 {
		return l.errorf("write", resource, fmt.Errorf("%w: token %d, resource has accepted %d", impl.ErrStaleFence, lease.Fence, res[1]))
	}
	return nil
}
