package goredis

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
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
	_ impl.LockSettler     = (*redsyncLock)(nil)
	_ impl.LockSettler     = (*redisLock)(nil)
)

// libraryLock returns the library lock strategy built on go-redis
// (impl.LockRedsync or impl.LockRedislock); nil for any other name.
func (c *Client) libraryLock(strategy string, base lockBase) impl.Locker {
	switch strategy {
	case impl.LockRedsync:
		pools := []redsyncredis.Pool{watchedPool{redsyncgoredis.NewPool(c.rdb)}}
		for _, p := range c.peers {
			pools = append(pools, watchedPool{redsyncgoredis.NewPool(p)})
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
// library's default (uniform in [50 ms, 250 ms)), only counted; the mutex
// then takes value as the one its acquisition sends
// (redsync.WithGenValueFunc), so that paybench knows it even when the
// acquisition fails.
func (l *redsyncLock) mutex(name, value string, tries *int) *redsync.Mutex {
	opts := []redsync.Option{redsync.WithExpiry(l.opts.TTL)}
	switch {
	case tries != nil:
		opts = append(opts, redsync.WithGenValueFunc(func() (string, error) { return value, nil }),
			redsync.WithRetryDelayFunc(func(n int) time.Duration {
				*tries = n
				return redsyncDelayMin + rand.N(redsyncDelayMax-redsyncDelayMin)
			}))
	case value != "":
		opts = append(opts, redsync.WithValue(value))
	}
	return l.rs.NewMutex(impl.LockKey(l.opts.Keys, name), opts...)
}

// redsyncValue draws a lock value as the library's own generator does:
// 16 random bytes, standard base64.
func redsyncValue() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:]) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(b[:])
}

// redsyncSends notes, for one acquisition, when redsync's SET NX calls
// began: the earliest that may have stored the value (answered yes, or
// not answered) bounds when the value's key can expire.
type redsyncSends struct {
	mu          sync.Mutex
	first, last time.Time // the earliest that may have stored it; the last sent
}

type sendsKey struct{}

func (s *redsyncSends) note(start time.Time, stored bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if start.After(s.last) {
		s.last = start
	}
	if (stored || err != nil) && (s.first.IsZero() || start.Before(s.first)) {
		s.first = start
	}
}

// sent returns the lower bound for a lease's Sent: the earliest SET NX
// that may have stored the value, else (none did) the last one sent, else
// start.
func (s *redsyncSends) sent(start time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.first.IsZero():
		return s.first
	case !s.last.IsZero():
		return s.last
	}
	return start
}

// watchedPool is a redsync pool whose connections note their SET NX
// calls in the acquisition's redsyncSends (found in the context redsync
// passes on from Acquire's).
type watchedPool struct{ redsyncredis.Pool }

// Get implements redsync's redis.Pool.
func (p watchedPool) Get(ctx context.Context) (redsyncredis.Conn, error) {
	c, err := p.Pool.Get(ctx)
	if err != nil {
		return nil, err
	}
	if s, ok := ctx.Value(sendsKey{}).(*redsyncSends); ok {
		return watchedConn{Conn: c, sends: s}, nil
	}
	return c, nil
}

type watchedConn struct {
	redsyncredis.Conn
	sends *redsyncSends
}

// SetNX implements redsync's redis.Conn, noting the call.
func (c watchedConn) SetNX(name, value string, expiry time.Duration) (bool, error) {
	start := time.Now()
	ok, err := c.Conn.SetNX(name, value, expiry)
	c.sends.note(start, ok, err)
	return ok, err
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
//
// Its value is drawn by paybench as the library draws it, so that a
// failed lease carries it (Token, Sent) for a settle. "Busy" (every try
// answered, the lock another's) is only what the library's error says: a
// try cut off by ctx is followed by redsync's ErrFailed at the next pause,
// so a caller that must know settles the lease (Settle).
func (l *redsyncLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	tries := 0
	value, start, sends := redsyncValue(), time.Now(), &redsyncSends{}
	m := l.mutex(name, value, &tries)
	err := m.LockContext(context.WithValue(ctx, sendsKey{}, sends))
	lease := l.lease(name, value)
	lease.Retries, lease.Sent = tries, sends.sent(start)
	if err != nil {
		if cerr := impl.ContextEnded(ctx); cerr != nil {
			if !redsyncUnreachable(err) {
				// Every try was answered: the lock stayed another's.
				return lease, fmt.Errorf("%w %q after %d attempts (%w): %w (%w)", impl.ErrLockNotAcquired, name, tries+1, impl.ErrLockBusy, cerr, err)
			}
			return lease, fmt.Errorf("%w %q after %d attempts: %w (%w)", impl.ErrLockNotAcquired, name, tries+1, cerr, err)
		}
		return lease, fmt.Errorf("%w %q: redsync gave up after %d tries: %w", impl.ErrLockNotAcquired, name, tries+1, err)
	}
	l.until(&lease, m)
	return lease, nil
}

// Settle implements impl.LockSettler: Mutex.UnlockContext with the
// lease's value, a compare-and-delete on every server; held when a quorum
// deleted it. A server that could not be reached leaves it unsettled
// (an error) unless a quorum deleted it anyway.
func (l *redsyncLock) Settle(ctx context.Context, lease impl.Lease) (bool, error) {
	ok, err := l.mutex(lease.Name, lease.Token, nil).UnlockContext(ctx)
	if ok {
		return true, nil
	}
	if redsyncUnreachable(err) {
		return false, l.errorf("settle", lease.Name, err)
	}
	return false, nil
}

// TryAcquire runs Mutex.TryLockContext (one try). A lock taken elsewhere
// is ok=false; servers that could not be reached are an error.
func (l *redsyncLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	value, start := redsyncValue(), time.Now()
	m := l.mutex(name, value, new(int))
	lease := l.lease(name, value)
	lease.Sent = start
	if err := m.TryLockContext(ctx); err != nil {
		if redsyncUnreachable(err) {
			return lease, false, l.errorf("acquire", name, err)
		}
		return impl.Lease{}, false, nil
	}
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

// sent returns when the last try began, at the earliest: the end of the
// last pause, or start when there was none; end when Obtain returned
// before the pause ended (then every try was answered "taken", and none
// stored the token).
func (r *countingRetry) sent(start, end time.Time) time.Time {
	if r.n == 0 {
		return start
	}
	return minTime(r.last.Add(r.d), end)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// redislockToken draws a token as the library's own generator does: 16
// random bytes, URL-safe base64 without padding.
func redislockToken() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
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
// ctx ends. The token (Options.Token) is drawn by paybench as the library
// draws it, so that a failed lease carries it (Token, Sent) for a settle.
func (l *redisLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	retry := &countingRetry{d: redislockRetry}
	token, start := redislockToken(), time.Now()
	lk, err := l.client.Obtain(ctx, impl.LockKey(l.opts.Keys, name), l.opts.TTL, &redislock.Options{RetryStrategy: retry, Token: token})
	if err != nil {
		// Obtain returns at the first try that fails: only the last try
		// may have stored the token.
		lease := l.lease(name, token)
		lease.Retries, lease.Sent = retry.n, retry.sent(start, time.Now())
		if cerr := impl.ContextEnded(ctx); cerr != nil {
			if dl, ok := ctx.Deadline(); errors.Is(err, redislock.ErrNotObtained) || ok && retry.pausing(dl) {
				// Obtain gave up waiting between tries: the lock stayed
				// another's.
				return lease, fmt.Errorf("%w %q after %d attempts (%w): %w (%w)", impl.ErrLockNotAcquired, name, retry.n+1, impl.ErrLockBusy, cerr, err)
			}
			return lease, fmt.Errorf("%w %q after %d attempts: %w (%w)", impl.ErrLockNotAcquired, name, retry.n+1, cerr, err)
		}
		if errors.Is(err, redislock.ErrNotObtained) {
			return lease, fmt.Errorf("%w %q: %w", impl.ErrLockNotAcquired, name, err)
		}
		return lease, l.errorf("acquire", name, err)
	}
	lease := l.keep(lk)
	lease.Name, lease.Retries, lease.Sent = name, retry.n, retry.sent(start, time.Now())
	return lease, nil
}

// Settle implements impl.LockSettler: a compare-and-delete of the lock
// key with the lease's token (what Lock.Release runs), forgetting the
// lease's handle.
func (l *redisLock) Settle(ctx context.Context, lease impl.Lease) (bool, error) {
	held, err := l.settle(ctx, impl.LockKey(l.opts.Keys, lease.Name), lease)
	if err == nil {
		l.forget(lease.Token)
	}
	return held, err
}

// TryAcquire runs Client.Obtain with the library's default (no retry).
//
// The token (Options.Token) is drawn by paybench as the library draws it,
// so that a failed attempt's lease carries it.
func (l *redisLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	token, start := redislockToken(), time.Now()
	lk, err := l.client.Obtain(ctx, impl.LockKey(l.opts.Keys, name), l.opts.TTL, &redislock.Options{Token: token})
	if errors.Is(err, redislock.ErrNotObtained) {
		return impl.Lease{}, false, nil
	}
	if err != nil {
		lease := l.lease(name, token)
		lease.Sent = start
		return lease, false, l.errorf("acquire", name, err)
	}
	lease := l.keep(lk)
	lease.Name, lease.Sent = name, start
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
