package goredis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// openPeers connects one go-redis client per Redlock peer URL, with the
// options of the main client (opt) but for the address, password and
// database each URL gives.
func openPeers(ctx context.Context, opt *redis.Options, urls []string) ([]*redis.Client, error) {
	var peers []*redis.Client
	for _, u := range urls {
		po, err := redis.ParseURL(u)
		if err != nil {
			closeAll(peers)
			return nil, fmt.Errorf("goredis: redlock peer: parse URL: %w", err)
		}
		o := *opt
		o.Addr, o.Network, o.Password, o.Username, o.DB, o.TLSConfig = po.Addr, po.Network, po.Password, po.Username, po.DB, po.TLSConfig
		p := redis.NewClient(&o)
		if err := p.Ping(ctx).Err(); err != nil {
			_ = p.Close()
			closeAll(peers)
			return nil, fmt.Errorf("goredis: connect to redlock peer %s: %w", o.Addr, err)
		}
		peers = append(peers, p)
	}
	return peers, nil
}

func closeAll(cs []*redis.Client) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// Compile-time checks: the library strategies are impl.Lockers.
var (
	_ impl.Locker          = (*redsyncLock)(nil)
	_ impl.Locker          = (*redisLock)(nil)
	_ impl.LibrarySettings = (*redsyncLock)(nil)
	_ impl.LibrarySettings = (*redisLock)(nil)
)

// libraryLock returns the library lock strategy built on go-redis
// (impl.LockRedsync or impl.LockRedislock); nil for any other name.
func (c *Client) libraryLock(strategy string, base lockBase) impl.Locker {
	switch strategy {
	case impl.LockRedsync:
		pools := []redsyncredis.Pool{redsyncgoredis.NewPool(c.rdb)}
		for _, p := range c.peers {
			pools = append(pools, redsyncgoredis.NewPool(p))
		}
		return &redsyncLock{lockBase: base, rs: redsync.New(pools...), servers: len(pools)}
	case impl.LockRedislock:
		return &redisLock{lockBase: base, client: redislock.New(c.rdb), held: map[string]*redislock.Lock{}}
	}
	return nil
}

// The defaults redsync documents (redsync.NewMutex), printed in the cell.
const (
	redsyncTries         = 32
	redsyncDelayMin      = 50 * time.Millisecond
	redsyncDelayMax      = 250 * time.Millisecond
	redsyncDriftFactor   = 0.01
	redsyncTimeoutFactor = 0.05
)

// redsyncLock is github.com/go-redsync/redsync/v4: one go-redis pool per
// independent server (the Redlock algorithm; a single pool on one
// server), with the library's defaults but for the expiry, which is the
// lease's TTL. The lease's Until is redsync's validity time.
type redsyncLock struct {
	lockBase
	rs      *redsync.Redsync
	servers int
}

// mutex returns the library's mutex for the lock name, with the expiry
// and, when value is not empty, the lease's value (redsync.WithValue,
// which the library offers to release or extend a lock from elsewhere).
// tries, when not nil, counts the retries: the delay function is the
// library's default (uniform in [50 ms, 250 ms)), only counted.
func (l *redsyncLock) mutex(name, value string, tries *int) *redsync.Mutex {
	opts := []redsync.Option{redsync.WithExpiry(l.opts.TTL)}
	if value != "" {
		opts = append(opts, redsync.WithValue(value))
	}
	if tries != nil {
		opts = append(opts, redsync.WithRetryDelayFunc(func(n int) time.Duration {
			*tries = n
			return redsyncDelayMin + rand.N(redsyncDelayMax-redsyncDelayMin)
		}))
	}
	return l.rs.NewMutex(impl.LockKey(l.opts.Keys, name), opts...)
}

// until sets the lease's Until to redsync's validity time when the lock
// spans several servers (Redlock); on one server the key's expiry is the
// lease, as for every other strategy.
func (l *redsyncLock) until(lease *impl.Lease, m *redsync.Mutex) {
	if l.servers > 1 {
		lease.Until = m.Until()
	}
}

// redsyncUnreachable reports whether a redsync error says that a server
// could not be reached (rather than that the lock is another's).
func redsyncUnreachable(err error) bool {
	var re *redsync.RedisError
	return errors.As(err, &re)
}

// Acquire runs Mutex.LockContext: up to 32 tries 50-250 ms apart, each
// SET NX PX on every server at once with a time-out of 5% of the expiry,
// a success needing a majority of servers within the validity time. When
// the tries run out or ctx ends first, the error wraps
// impl.ErrLockNotAcquired (and ctx's error, when it ended).
func (l *redsyncLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	tries := 0
	m := l.mutex(name, "", &tries)
	err := m.LockContext(ctx)
	if err != nil {
		if cerr := impl.ContextEnded(ctx); cerr != nil {
			if !redsyncUnreachable(err) {
				// Every try was answered: the lock stayed another's.
				return impl.Lease{Name: name, Retries: tries}, fmt.Errorf("%w %q after %d attempts (%w): %w (%w)", impl.ErrLockNotAcquired, name, tries+1, impl.ErrLockBusy, cerr, err)
			}
			return impl.Lease{Name: name, Retries: tries}, fmt.Errorf("%w %q after %d attempts: %w (%w)", impl.ErrLockNotAcquired, name, tries+1, cerr, err)
		}
		return impl.Lease{Name: name, Retries: tries}, fmt.Errorf("%w %q: redsync gave up after %d tries: %w", impl.ErrLockNotAcquired, name, tries+1, err)
	}
	lease := l.lease(name, m.Value())
	lease.Retries = tries
	l.until(&lease, m)
	return lease, nil
}

// TryAcquire runs Mutex.TryLockContext (one try). A lock taken elsewhere
// is ok=false; servers that could not be reached are an error.
func (l *redsyncLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	m := l.mutex(name, "", nil)
	if err := m.TryLockContext(ctx); err != nil {
		if redsyncUnreachable(err) {
			return impl.Lease{}, false, l.errorf("acquire", name, err)
		}
		return impl.Lease{}, false, nil
	}
	lease := l.lease(name, m.Value())
	l.until(&lease, m)
	return lease, true, nil
}

// Release runs Mutex.UnlockContext with the lease's value: a compare-and-
// delete on every server. Fewer than a majority deleted is
// impl.ErrLockNotHeld, unless some servers could not be reached (then the
// library's error).
func (l *redsyncLock) Release(ctx context.Context, lease impl.Lease) error {
	ok, err := l.mutex(lease.Name, lease.Token, nil).UnlockContext(ctx)
	if ok {
		return nil
	}
	if redsyncUnreachable(err) {
		return l.errorf("release", lease.Name, err)
	}
	return l.errorf("release", lease.Name, fmt.Errorf("%w (%w)", impl.ErrLockNotHeld, err))
}

// Refresh runs Mutex.ExtendContext with the lease's value: a compare-and-
// pexpire on every server, a majority needed.
func (l *redsyncLock) Refresh(ctx context.Context, lease impl.Lease) error {
	ok, err := l.mutex(lease.Name, lease.Token, nil).ExtendContext(ctx)
	if ok {
		return nil
	}
	if redsyncUnreachable(err) {
		return l.errorf("refresh", lease.Name, err)
	}
	return l.errorf("refresh", lease.Name, fmt.Errorf("%w (%v)", impl.ErrLockNotHeld, err))
}

// Write stores value in the resource unconditionally: redsync issues no
// fencing token.
func (l *redsyncLock) Write(ctx context.Context, resource string, lease impl.Lease, value string) error {
	return l.writeUnfenced(ctx, resource, lease, value)
}

// LibrarySettings implements impl.LibrarySettings.
func (l *redsyncLock) LibrarySettings() map[string]string {
	return map[string]string{
		"library":        "github.com/go-redsync/redsync/v4 " + impl.ModuleVersion("github.com/go-redsync/redsync/v4"),
		"servers":        strconv.Itoa(l.servers),
		"quorum":         strconv.Itoa(l.servers/2 + 1),
		"expiry":         l.opts.TTL.String(),
		"tries":          strconv.Itoa(redsyncTries),
		"retry_delay":    redsyncDelayMin.String() + "-" + redsyncDelayMax.String() + " uniform (library default)",
		"drift_factor":   strconv.FormatFloat(redsyncDriftFactor, 'g', -1, 64),
		"timeout_factor": strconv.FormatFloat(redsyncTimeoutFactor, 'g', -1, 64),
		"extend":         "Extend on demand only (no background refresh)",
		"fencing":        "none",
	}
}

// redislockRetry is the retry the library's README example uses, every
// 100 ms; redislock's default is not to retry at all, so Acquire (which
// must wait) follows the example, bounded by the caller's deadline as the
// library's second example does.
const redislockRetry = 100 * time.Millisecond

// redisLock is github.com/bsm/redislock: SET NX PX with a random token
// (Client.Obtain), compare-and-delete Release, compare-and-pexpire
// Refresh. Its Lock handles are kept by token, since a Lease is plain
// data and the library releases only through the handle it returned.
type redisLock struct {
	lockBase
	client *redislock.Client
	mu     sync.Mutex
	held   map[string]*redislock.Lock
}

// countingRetry is redislock.LinearBackoff(d), counting its uses and
// noting when the last pause began (Obtain calls it, then sleeps, on the
// caller's goroutine).
type countingRetry struct {
	d    time.Duration
	n    int
	last time.Time
}

// NextBackoff implements redislock.RetryStrategy.
func (r *countingRetry) NextBackoff() time.Duration { r.n++; r.last = time.Now(); return r.d }

// pausing reports whether a deadline at dl fell inside the last pause:
// Obtain then ended between tries (it returns ctx's error either way, so
// only the time tells it from a try cut off mid-command).
func (r *countingRetry) pausing(dl time.Time) bool {
	return r.n > 0 && !dl.After(r.last.Add(r.d))
}

func (l *redisLock) keep(lk *redislock.Lock) impl.Lease {
	l.mu.Lock()
	l.held[lk.Token()] = lk
	l.mu.Unlock()
	return impl.Lease{Name: "", Token: lk.Token(), TTL: l.opts.TTL}
}

func (l *redisLock) handle(token string) *redislock.Lock {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[token]
}

func (l *redisLock) forget(token string) {
	l.mu.Lock()
	delete(l.held, token)
	l.mu.Unlock()
}

// Acquire runs Client.Obtain with the README's retry, every 100 ms, until
// ctx ends.
func (l *redisLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	retry := &countingRetry{d: redislockRetry}
	lk, err := l.client.Obtain(ctx, impl.LockKey(l.opts.Keys, name), l.opts.TTL, &redislock.Options{RetryStrategy: retry})
	if err != nil {
		if cerr := impl.ContextEnded(ctx); cerr != nil {
			if dl, ok := ctx.Deadline(); errors.Is(err, redislock.ErrNotObtained) || ok && retry.pausing(dl) {
				// Obtain gave up waiting between tries: the lock stayed
				// another's.
				return impl.Lease{Name: name, Retries: retry.n}, fmt.Errorf("%w %q after %d attempts (%w): %w (%w)", impl.ErrLockNotAcquired, name, retry.n+1, impl.ErrLockBusy, cerr, err)
			}
			return impl.Lease{Name: name, Retries: retry.n}, fmt.Errorf("%w %q after %d attempts: %w (%w)", impl.ErrLockNotAcquired, name, retry.n+1, cerr, err)
		}
		if errors.Is(err, redislock.ErrNotObtained) {
			return impl.Lease{Name: name, Retries: retry.n}, fmt.Errorf("%w %q: %w", impl.ErrLockNotAcquired, name, err)
		}
		return impl.Lease{Name: name, Retries: retry.n}, l.errorf("acquire", name, err)
	}
	lease := l.keep(lk)
	lease.Name, lease.Retries = name, retry.n
	return lease, nil
}

// TryAcquire runs Client.Obtain with the library's default (no retry).
func (l *redisLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	lk, err := l.client.Obtain(ctx, impl.LockKey(l.opts.Keys, name), l.opts.TTL, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		return impl.Lease{}, false, nil
	}
	if err != nil {
		return impl.Lease{}, false, l.errorf("acquire", name, err)
	}
	lease := l.keep(lk)
	lease.Name = name
	return lease, true, nil
}

// Release runs Lock.Release (compare-and-delete). A lease this locker did
// not hand out, or one the library finds no longer held, is
// impl.ErrLockNotHeld.
func (l *redisLock) Release(ctx context.Context, lease impl.Lease) error {
	lk := l.handle(lease.Token)
	if lk == nil || lk.Key() != impl.LockKey(l.opts.Keys, lease.Name) {
		return l.errorf("release", lease.Name, fmt.Errorf("%w: no lock handle for this lease", impl.ErrLockNotHeld))
	}
	err := lk.Release(ctx)
	switch {
	case err == nil:
		l.forget(lease.Token)
		return nil
	case errors.Is(err, redislock.ErrLockNotHeld):
		l.forget(lease.Token)
		return l.errorf("release", lease.Name, fmt.Errorf("%w (%w)", impl.ErrLockNotHeld, err))
	}
	return l.errorf("release", lease.Name, err)
}

// Refresh runs Lock.Refresh with the lease's TTL (compare-and-pexpire);
// the library's ErrNotObtained is impl.ErrLockNotHeld.
func (l *redisLock) Refresh(ctx context.Context, lease impl.Lease) error {
	lk := l.handle(lease.Token)
	if lk == nil || lk.Key() != impl.LockKey(l.opts.Keys, lease.Name) {
		return l.errorf("refresh", lease.Name, fmt.Errorf("%w: no lock handle for this lease", impl.ErrLockNotHeld))
	}
	err := lk.Refresh(ctx, lease.TTL, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		return l.errorf("refresh", lease.Name, fmt.Errorf("%w (%w)", impl.ErrLockNotHeld, err))
	}
	if err != nil {
		return l.errorf("refresh", lease.Name, err)
	}
	return nil
}

// Write stores value in the resource unconditionally: redislock issues no
// fencing token.
func (l *redisLock) Write(ctx context.Context, resource string, lease impl.Lease, value string) error {
	return l.writeUnfenced(ctx, resource, lease, value)
}

// LibrarySettings implements impl.LibrarySettings.
func (l *redisLock) LibrarySettings() map[string]string {
	return map[string]string{
		"library": "github.com/bsm/redislock " + impl.ModuleVersion("github.com/bsm/redislock"),
		"ttl":     l.opts.TTL.String(),
		"retry":   "LinearBackoff(" + redislockRetry.String() + ") until the caller's deadline (README example; the library's default is no retry)",
		"refresh": "Refresh on demand only (no background refresh)",
		"fencing": "none",
	}
}
