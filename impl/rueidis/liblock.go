package rueidis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	rd "github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"

	"github.com/paybench/paybench/impl"
)

// Compile-time checks.
var (
	_ impl.Locker          = (*rueidisLock)(nil)
	_ impl.LibrarySettings = (*rueidisLock)(nil)
	_ impl.LockKeyer       = (*rueidisLock)(nil)
	_ impl.LockSettler     = (*rueidisLock)(nil)
)

// rueidislockMajority is the KeyMajority the library's README tells users
// of a single Redis instance to set ("Use KeyMajority=1 if you have only
// one Redis instance"): one key per lock.
const rueidislockMajority = 1

// rueidisLock is github.com/redis/rueidis/rueidislock, set up as its
// README shows for one Redis 7 server (KeyMajority 1, NoLoopTracking),
// with its other defaults (ExtendInterval KeyValidity/2, TryNextAfter
// 20 ms, client-side caching on) and KeyValidity set to the lease's TTL.
// A lock is held while the context the library returns lives; the library
// extends its key in the background and cancels that context as soon as
// it finds the key lost. Release cancels it.
//
// The library keeps its token to itself; the locker's client notes the
// value the library's acquire script sends (tokenSpy), so that the lease
// carries the token the lock key holds, as the other strategies' do.
type rueidisLock struct {
	lockBase
	locker rueidislock.Locker
	prefix string // the library's KeyPrefix

	mu   sync.Mutex
	held map[string]*heldLock
}

// heldLock is one lease's context and how to end it.
type heldLock struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc // the library's: releases the lock
	stop   context.CancelFunc // paybench's: ends the lock's parent context
}

// newRueidisLock builds the library's Locker on a client of its own (the
// library sets up client-side caching on it), with c's connection
// settings.
func (c *Client) newRueidisLock(base lockBase) (*rueidisLock, error) {
	opt := c.opt
	opt.DisableCache = false // the library's default: invalidations wake waiters
	prefix := base.opts.Keys.Prefix() + "lock"
	locker, err := rueidislock.NewLocker(rueidislock.LockerOption{
		ClientOption:   opt,
		KeyPrefix:      prefix,
		KeyValidity:    base.opts.TTL,
		KeyMajority:    rueidislockMajority,
		NoLoopTracking: true,
		ClientBuilder: func(o rd.ClientOption) (rd.Client, error) {
			rc, err := rd.NewClient(o)
			if err != nil {
				return nil, err
			}
			return &tokenSpy{Client: rc}, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rueidis: lock %s: %w", impl.LockRueidislock, err)
	}
	l := &rueidisLock{lockBase: base, locker: locker, prefix: prefix, held: map[string]*heldLock{}}
	c.onClose(locker.Close)
	return l, nil
}

// libName is the name the lock is given to the library: the lock name
// escaped and in braces, so that its key shares the hash tag of the
// scenario's keys of the same lock.
func libName(name string) string { return "{" + impl.Escape(name) + "}" }

// LockKey implements impl.LockKeyer: the library's key
// "<KeyPrefix>:0:<name>" (one key, KeyMajority 1).
func (l *rueidisLock) LockKey(name string) string {
	return l.prefix + ":0:" + libName(name)
}

// acquireSlot collects, for one acquisition, the value the library's
// scripts sent (its token) and how many acquire attempts it made.
type acquireSlot struct {
	mu       sync.Mutex
	token    string
	sent     time.Time // when the first script with token was sent
	attempts int
}

type slotKey struct{}

// tokenSpy is the library's client, noting for each acquisition (through
// the context's acquireSlot) ARGV[1] of the scripts it runs: every one of
// rueidislock's scripts takes the lock key and the lock's value.
type tokenSpy struct{ rd.Client }

// Do implements rueidis.Client.
func (s *tokenSpy) Do(ctx context.Context, cmd rd.Completed) rd.RedisResult {
	slot, _ := ctx.Value(slotKey{}).(*acquireSlot)
	// The script's value, copied before Do: rueidis recycles a command
	// once it is done.
	var value string
	if slot != nil {
		if args := cmd.Commands(); len(args) >= 5 && (args[0] == "EVALSHA" || args[0] == "EVAL") && args[2] == "1" {
			value = strings.Clone(args[4])
		}
	}
	start := time.Now()
	res := s.Client.Do(ctx, cmd)
	if value != "" {
		if e, ok := rd.IsRedisErr(res.Error()); !ok || !e.IsNoScript() {
			slot.mu.Lock()
			// Each try of WithContext draws a new value: the last one
			// sent is the one that took the lock (extends resend it).
			if slot.token != value {
				slot.token, slot.sent = value, start
			}
			slot.attempts++
			slot.mu.Unlock()
		}
	}
	return res
}

// start returns the parent context of one acquisition: detached from
// ctx's cancellation (the lock must outlive the caller's acquire
// deadline) but stopped by stop, and carrying the slot.
func start(ctx context.Context) (context.Context, context.CancelFunc, *acquireSlot) {
	slot := &acquireSlot{}
	parent, stop := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), slotKey{}, slot))
	return parent, stop, slot
}

// taken records a lock the library handed out and returns its lease.
func (l *rueidisLock) taken(name string, parent context.Context, cancel, stop context.CancelFunc, slot *acquireSlot) (impl.Lease, error) {
	slot.mu.Lock()
	token, sent, attempts := slot.token, slot.sent, slot.attempts
	slot.mu.Unlock()
	if token == "" {
		cancel()
		stop()
		return impl.Lease{}, l.errorf("acquire", name, errors.New("rueidislock took the lock without a script paybench could see"))
	}
	l.mu.Lock()
	l.held[token] = &heldLock{name: name, ctx: parent, cancel: cancel, stop: stop}
	l.mu.Unlock()
	lease := l.lease(name, token)
	lease.Retries, lease.Sent = max(attempts-1, 0), sent
	return lease, nil
}

// Acquire runs Locker.WithContext: it tries the key, and waits for a
// client-side-caching invalidation (or TryNextAfter) before trying again,
// until ctx ends.
func (l *rueidisLock) Acquire(ctx context.Context, name string) (impl.Lease, error) {
	parent, stop, slot := start(ctx)
	// The caller's ctx bounds the wait only: once the lock is taken, the
	// lock's life is the library's context.
	after := context.AfterFunc(ctx, stop)
	lctx, cancel, err := l.locker.WithContext(parent, libName(name))
	if err == nil && !after() {
		// ctx ended just as the lock was taken: stop already ended it.
		cancel()
		err = ctx.Err()
	}
	if err != nil {
		after()
		stop()
		slot.mu.Lock()
		n, token, sent := slot.attempts, slot.token, slot.sent
		slot.mu.Unlock()
		// The last try's value, for a settle: the library deletes a try's
		// key itself when the try fails, unless that delete fails too.
		lease := l.lease(name, token)
		lease.Retries, lease.Sent = n, sent
		if cerr := impl.ContextEnded(ctx); cerr != nil {
			// rueidislock waits for the lock itself and withdraws its own
			// attempts when ctx ends: the lock stayed another's.
			return lease, fmt.Errorf("%w %q after %d attempts (%w): %w", impl.ErrLockNotAcquired, name, n, impl.ErrLockBusy, cerr)
		}
		return lease, l.errorf("acquire", name, err)
	}
	return l.taken(name, lctx, cancel, stop, slot)
}

// TryAcquire runs Locker.TryWithContext (one try); ErrNotLocked is
// ok=false.
func (l *rueidisLock) TryAcquire(ctx context.Context, name string) (impl.Lease, bool, error) {
	parent, stop, slot := start(ctx)
	lctx, cancel, err := l.locker.TryWithContext(parent, libName(name))
	if err != nil {
		stop()
		if errors.Is(err, rueidislock.ErrNotLocked) {
			return impl.Lease{}, false, nil
		}
		return impl.Lease{}, false, l.errorf("acquire", name, err)
	}
	lease, err := l.taken(name, lctx, cancel, stop, slot)
	return lease, err == nil, err
}

// Release deletes the lease's key with a compare-and-delete of its value
// — the script the library's own release runs — through paybench's
// client, then cancels the lease's context, which stops the library's
// extending and waits for it. The library's cancel reports nothing, and
// it cancels a lost lease's context only once it notices the loss (an
// invalidation, a failed extend): paybench's own compare-and-delete says
// exactly whether the release applied. A lease whose key no longer holds
// its value (lost), or one this locker did not hand out, is
// impl.ErrLockNotHeld; a failed delete leaves the library's own, on
// cancel, as it would.
func (l *rueidisLock) Release(ctx context.Context, lease impl.Lease) error {
	h := l.take(lease)
	if h == nil {
		return l.errorf("release", lease.Name, fmt.Errorf("%w: no lock context for this lease", impl.ErrLockNotHeld))
	}
	deleted, err := compareDelete(ctx, l.rc, l.LockKey(lease.Name), lease.Token)
	h.cancel()
	h.stop()
	switch {
	case err != nil:
		return l.errorf("release", lease.Name, err)
	case !deleted:
		return l.errorf("release", lease.Name, fmt.Errorf("%w: the key no longer held the lease's value (lost)", impl.ErrLockNotHeld))
	}
	return nil
}

// take removes and returns the lock context this locker handed out for
// lease (nil when it handed out none for this lease's name and token).
func (l *rueidisLock) take(lease impl.Lease) *heldLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held[lease.Token]
	if h == nil || h.name != lease.Name {
		return nil
	}
	delete(l.held, lease.Token)
	return h
}

// Settle implements impl.LockSettler: a compare-and-delete of the
// library's key with the lease's value, through paybench's client (its
// DEL invalidates the library's cache, waking its waiters), then the end
// of the lease's context if paybench handed it out (which would have
// deleted the key itself).
func (l *rueidisLock) Settle(ctx context.Context, lease impl.Lease) (bool, error) {
	held, err := l.settle(ctx, l.LockKey(lease.Name), lease)
	if err != nil {
		return false, err
	}
	if h := l.take(lease); h != nil {
		h.cancel()
		h.stop()
	}
	return held, nil
}

// Refresh is not offered: rueidislock extends its key by itself, every
// ExtendInterval, for as long as the lease's context lives.
func (l *rueidisLock) Refresh(_ context.Context, lease impl.Lease) error {
	return l.errorf("refresh", lease.Name, fmt.Errorf("%w: rueidislock extends its keys itself and has no manual refresh", impl.ErrNotSupported))
}

// Write stores value in the resource unconditionally: rueidislock issues
// no fencing token.
func (l *rueidisLock) Write(ctx context.Context, resource string, lease impl.Lease, value string) error {
	return l.writeUnfenced(ctx, resource, lease, value)
}

// LibrarySettings implements impl.LibrarySettings.
func (l *rueidisLock) LibrarySettings() map[string]string {
	return map[string]string{
		"library":          "github.com/redis/rueidis/rueidislock " + impl.ModuleVersion("github.com/redis/rueidis"),
		"key_validity":     l.opts.TTL.String(),
		"extend_interval":  (l.opts.TTL / 2).String() + " (KeyValidity/2, always on, in the background)",
		"key_majority":     strconv.Itoa(rueidislockMajority) + " (README: one Redis instance)",
		"try_next_after":   (20 * time.Millisecond).String() + " (library default)",
		"no_loop_tracking": "true (README: Redis >= 7.0.5)",
		"client_cache":     "true (library default: invalidations wake waiters)",
		"fencing":          "none",
	}
}
