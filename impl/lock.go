package impl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Lock strategies.
const (
	// LockNaive is the seed's lock: SET key "locked" NX EX, polled every
	// 100 ms, released with an unconditional DEL. A holder whose lease
	// expired deletes the next holder's lock.
	LockNaive = "naive"
	// LockToken is SET key <random token> NX PX; release and refresh are
	// compare-and-delete and compare-and-pexpire scripts, so only the
	// holder of the token can end or extend its lease.
	LockToken = "token"
	// LockFenced is the token lock plus a fencing token (INCR, issued in
	// the same script as the SET): the protected resource rejects writes
	// whose fencing token is older than one it already accepted.
	LockFenced = "fenced"
)

// LockStrategies lists the lock strategies in display order.
func LockStrategies() []string { return []string{LockNaive, LockToken, LockFenced} }

// NaiveLockValue is the fixed value the seed's lock stores: every holder
// writes the same string, so no holder can tell its lock from another's.
const NaiveLockValue = "locked"

// Lock defaults (LockOptions.WithDefaults).
const (
	// DefaultLockTTL is the lease length when none is given: the seed's
	// get_lock(lock_key, 10).
	DefaultLockTTL = 10 * time.Second
	// DefaultNaivePoll is the naive lock's pause between attempts: the
	// seed's time.sleep(0.1).
	DefaultNaivePoll = 100 * time.Millisecond
	// DefaultLockRetryMin is the first back-off cap of the token and fenced
	// locks.
	DefaultLockRetryMin = time.Millisecond
	// DefaultLockRetryMax caps the back-off of the token and fenced locks.
	DefaultLockRetryMax = 50 * time.Millisecond
)

// ResourceLogMax is how many accepted writes a protected resource's log
// keeps (the oldest are trimmed).
const ResourceLogMax = 100_000

// Sentinel errors of the lock family. Implementations wrap them (with %w)
// so callers test with errors.Is.
var (
	// ErrLockNotAcquired is returned by Acquire when its context ended
	// before the lock could be taken; the error also wraps the context's
	// error (context.DeadlineExceeded or context.Canceled).
	ErrLockNotAcquired = errors.New("lock not acquired")
	// ErrLockBusy is wrapped, with ErrLockNotAcquired, when the wait ended
	// while the lock was another's and no attempt of the caller's was in
	// flight: every attempt was answered "taken". It is the lock's own
	// "no" (a refusal, like ErrContention), where an attempt cut off by the
	// deadline mid-command — which may have taken the lock — is not.
	ErrLockBusy = errors.New("the lock stayed busy")
	// ErrLockNotHeld is returned by Release and Refresh when the lock no
	// longer holds the lease's token: the lease expired, and the lock may
	// now belong to another holder, whose lease was left untouched.
	ErrLockNotHeld = errors.New("lock not held")
	// ErrStaleFence is returned by a fenced Write whose fencing token is
	// older than the newest one the resource already accepted; the
	// resource was left unchanged.
	ErrStaleFence = errors.New("stale fencing token")
)

// Lease is one acquisition of a lock. It is plain data: a holder passes it
// back to Release, Refresh and Write.
type Lease struct {
	// Name is the lock's name (escaped into its key by LockKey).
	Name string
	// Token identifies this acquisition: random per acquisition for the
	// token and fenced locks, NaiveLockValue for the naive one.
	Token string
	// Fence is the fencing token (fenced lock only; 0 otherwise). Fences
	// of one lock strictly increase with each acquisition.
	Fence int64
	// TTL is the lease length the lock was taken (and is refreshed) with.
	TTL time.Duration
	// Retries counts the failed attempts before the lock was taken (after
	// an Acquire that gave up: the attempts it made).
	Retries int
	// Until is when the lease stops being valid as the client computed it
	// on acquisition, for locks whose validity is not one key's expiry on
	// one server (redsync over several servers: the Redlock validity
	// time, TTL minus the time the acquisition took minus the clock-drift
	// allowance). Zero for the others: the lock key's expiry is the lease.
	Until time.Time
	// Sent is when the attempt that sent Token began: a lower bound on
	// when the lock could have taken it, so the key holding Token cannot
	// have expired before Sent+TTL. Set by Acquire on a taken lease (by
	// TryAcquire too, for the locks with tokens of their own) and, when
	// the lock knows it, on a failed Acquire's (see Locker.Acquire).
	Sent time.Time
}

// Locker is the distributed-lock family: a lease-based lock per name and
// the resource it protects.
type Locker interface {
	// Acquire takes the lock name, waiting (polling or backing off) until
	// it is free or ctx ends; then it returns an error wrapping
	// ErrLockNotAcquired and ctx's error, promptly, with the lease's
	// Retries set. A SET that timed out in flight may still have taken the
	// lock: the failed lease then carries the token its last attempt sent
	// (Token, Sent, TTL) when the lock has tokens of its own, so that the
	// caller can settle it (LockSettler); left alone, it expires after the
	// TTL.
	Acquire(ctx context.Context, name string) (Lease, error)
	// TryAcquire makes one attempt; ok reports whether it took the lock.
	// When the attempt fails (err), lease carries the token it sent (and
	// Sent), when the lock has tokens of its own, as a failed Acquire's
	// does.
	TryAcquire(ctx context.Context, name string) (lease Lease, ok bool, err error)
	// Release ends the lease. The token and fenced locks delete the lock
	// only if it still holds lease.Token and otherwise return an error
	// wrapping ErrLockNotHeld; the naive lock deletes it whoever holds it.
	Release(ctx context.Context, lease Lease) error
	// Refresh extends the lease to lease.TTL from now if the lock still
	// holds lease.Token, else returns an error wrapping ErrLockNotHeld.
	// The naive lock has no refresh (ErrNotSupported).
	Refresh(ctx context.Context, lease Lease) error
	// Write stores value in the protected resource on behalf of lease's
	// holder and appends it to the resource's log. The fenced lock's write
	// is refused with ErrStaleFence when lease.Fence is older than the
	// newest fence the resource accepted; the naive and token locks have
	// no fence, and the resource accepts whatever arrives.
	Write(ctx context.Context, resource string, lease Lease, value string) error
}

// LockOptions tunes a lock strategy.
type LockOptions struct {
	// Keys is the run's keyspace; required.
	Keys Keyspace
	// TTL is the lease length (default DefaultLockTTL; at least 1 ms).
	// The naive lock sends EX when TTL is a whole number of seconds, as the
	// seed does, and PX otherwise; the other locks send PX.
	TTL time.Duration
	// Poll is the naive lock's fixed pause between attempts (default
	// DefaultNaivePoll).
	Poll time.Duration
	// RetryMin and RetryMax shape the token and fenced locks' capped
	// exponential back-off with full jitter: before retry n (0-based) the
	// lock sleeps a uniform random time in [0, min(RetryMax, RetryMin·2^n)].
	// Defaults DefaultLockRetryMin and DefaultLockRetryMax.
	RetryMin, RetryMax time.Duration
	// Watchdog, for the token and fenced locks, refreshes every lease in
	// the background every WatchdogEvery until it is released (or found
	// lost). The naive lock cannot refresh and refuses it.
	Watchdog bool
	// WatchdogEvery is the watchdog's period (default TTL/3).
	WatchdogEvery time.Duration
}

// WithDefaults returns o with zero fields set to their defaults.
func (o LockOptions) WithDefaults() LockOptions {
	if o.TTL == 0 {
		o.TTL = DefaultLockTTL
	}
	if o.Poll == 0 {
		o.Poll = DefaultNaivePoll
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultLockRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = max(DefaultLockRetryMax, o.RetryMin)
	}
	if o.WatchdogEvery == 0 {
		o.WatchdogEvery = o.TTL / 3
	}
	return o
}

// Validate checks options that WithDefaults has filled in.
func (o LockOptions) Validate() error {
	switch {
	case o.Keys.Prefix() == "":
		return errors.New("LockOptions.Keys is required")
	case o.TTL < time.Millisecond:
		return fmt.Errorf("lock TTL %s is shorter than 1ms", o.TTL)
	case o.Poll <= 0:
		return fmt.Errorf("lock poll %s must be positive", o.Poll)
	case o.RetryMin <= 0 || o.RetryMax < o.RetryMin:
		return fmt.Errorf("lock back-off %s..%s: want 0 < min <= max", o.RetryMin, o.RetryMax)
	case o.Watchdog && (o.WatchdogEvery <= 0 || o.WatchdogEvery >= o.TTL):
		return fmt.Errorf("watchdog period %s must be positive and shorter than the TTL %s", o.WatchdogEvery, o.TTL)
	}
	return nil
}

// Backoff returns the pause before retry n (0-based) of the token and
// fenced locks: uniform in [0, min(RetryMax, RetryMin·2^n)] ("full
// jitter"), so that waiters spread out instead of retrying in step.
func (o LockOptions) Backoff(n int) time.Duration {
	ceiling := o.RetryMax
	if n < 62 {
		if d := o.RetryMin << n; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return rand.N(ceiling + 1)
}

// LockBackend is implemented by backends that offer the lock family.
type LockBackend interface {
	// Lock returns the named strategy (one of LockStrategies).
	Lock(strategy string, opts LockOptions) (Locker, error)
}

// LockKey is the lock's key: prefix + "lock:{<name>}", a string holding
// the holder's token, with the lease as its expiry.
func LockKey(k Keyspace, name string) string { return k.Tagged("lock", name) }

// LockFenceKey is the fenced lock's counter: prefix + "lock:{<name>}:fence",
// an integer, the last fencing token issued (it never expires, so tokens
// keep increasing across leases).
func LockFenceKey(k Keyspace, name string) string { return k.Tagged("lock", name, "fence") }

// ResourceKey is a protected resource: prefix + "resource:{<id>}", a hash
// with the fields ResourceValue, ResourceFence, ResourceWrites and
// ResourceRejected.
func ResourceKey(k Keyspace, id string) string { return k.Tagged("resource", id) }

// ResourceLogKey is a protected resource's log: prefix +
// "resource:{<id>}:log", a list of accepted writes in the order they
// landed, each FormatResourceEntry(fence, value), the last ResourceLogMax
// kept.
func ResourceLogKey(k Keyspace, id string) string { return k.Tagged("resource", id, "log") }

// Fields of a protected resource's hash (ResourceKey).
const (
	// ResourceValue is the last value written.
	ResourceValue = "value"
	// ResourceFence is the newest fencing token accepted (fenced lock).
	ResourceFence = "fence"
	// ResourceWrites counts accepted writes.
	ResourceWrites = "writes"
	// ResourceRejected counts writes refused for a stale fencing token.
	ResourceRejected = "rejected"
)

// FormatResourceEntry is one entry of a resource's log: the writer's
// fencing token (0 without one), a colon, the value.
func FormatResourceEntry(fence int64, value string) string {
	return strconv.FormatInt(fence, 10) + ":" + value
}

// ParseResourceEntry splits a log entry made by FormatResourceEntry.
func ParseResourceEntry(entry string) (fence int64, value string, err error) {
	f, v, ok := strings.Cut(entry, ":")
	if !ok {
		return 0, "", fmt.Errorf("resource log entry %q has no fence", entry)
	}
	fence, err = strconv.ParseInt(f, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("resource log entry %q: fence: %w", entry, err)
	}
	return fence, v, nil
}

// AcquireLoop is the waiting loop every lock's Acquire shares: it calls
// try until it takes the lock, sleeping pause(n) before retry n, and stops
// as soon as ctx ends (also in the middle of a pause) with an error wrapping
// ErrLockNotAcquired and ctx's error. An error from try that is not caused
// by ctx ending is returned at once.
func AcquireLoop(ctx context.Context, name string, try func(ctx context.Context) (Lease, bool, error), pause func(n int) time.Duration) (Lease, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			if n > 0 {
				return Lease{Name: name, Retries: n}, busy(name, n, err)
			}
			return Lease{Name: name, Retries: n}, notAcquired(name, n, err)
		}
		sent := time.Now()
		lease, ok, err := try(ctx)
		if err != nil {
			// The attempt's token, for a caller settling it: it may have
			// taken the lock.
			lease.Name, lease.Retries, lease.Sent = name, n, sent
			if cerr := ctxEnded(ctx); cerr != nil {
				return lease, notAcquired(name, n, fmt.Errorf("%w (%w)", cerr, err))
			}
			return lease, err
		}
		if ok {
			lease.Retries, lease.Sent = n, sent
			return lease, nil
		}
		d := pause(n)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return Lease{Name: name, Retries: n + 1}, busy(name, n+1, ctx.Err())
		case <-timer.C:
		}
	}
}

// ctxEnded returns ctx's error, or context.DeadlineExceeded when ctx's
// deadline has passed but ctx has not noticed yet: a client library that
// turns the deadline into a socket deadline may report the time-out a
// moment before the context does.
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func notAcquired(name string, attempts int, err error) error {
	return fmt.Errorf("%w %q after %d attempts: %w", ErrLockNotAcquired, name, attempts, err)
}

// busy is notAcquired for a wait that ended between attempts, each of
// which found the lock taken: it wraps ErrLockBusy too.
func busy(name string, attempts int, err error) error {
	return fmt.Errorf("%w %q after %d attempts (%w): %w", ErrLockNotAcquired, name, attempts, ErrLockBusy, err)
}

// LockBusy returns err (an Acquire's ErrLockNotAcquired whose every
// attempt found the lock taken) wrapped so that it is classified as the
// lock's own "no", ClassContention, and whether it was one. Other errors
// are returned unchanged.
func LockBusy(err error) (error, bool) {
	if !errors.Is(err, ErrLockBusy) {
		return err, false
	}
	return fmt.Errorf("%w: %w", ErrContention, err), true
}

// LockSettler is implemented by lockers whose every lease holds a token of
// its own (not the naive lock, whose value is everyone's): an acquisition
// or a release whose reply was lost can then be settled against the
// server.
type LockSettler interface {
	// Settle deletes lease's lock if it holds lease.Token (a
	// compare-and-delete; on a Redlock deployment on every server) and
	// reports whether it did: held is true when the lock held the token (on
	// a quorum of servers). lease.Token must not be empty.
	Settle(ctx context.Context, lease Lease) (held bool, err error)
}

// LeaseState is what SettleLease found out.
type LeaseState int

// LeaseStates.
const (
	// LeaseUnknown: the lease could not be settled (the lock has no
	// tokens of its own, the read failed, or came too late to tell).
	LeaseUnknown LeaseState = iota
	// LeaseHeld: the lock held the lease's token (the acquisition had
	// taken it, the release had not applied); SettleLease released it.
	LeaseHeld
	// LeaseGone: the lock did not hold the token, before Sent+TTL, when it
	// would still have held it had the lease's attempt taken it and no
	// release of it applied: the acquisition did not take the lock (or
	// the lock's own clean-up already gave it back), the release applied.
	LeaseGone
)

// String names the state.
func (s LeaseState) String() string {
	switch s {
	case LeaseHeld:
		return "held"
	case LeaseGone:
		return "gone"
	}
	return "unknown"
}

// SettleLease finds out, on the server, what became of a lease whose
// acquisition or release lost its reply: the lock is asked to delete
// itself if it holds lease.Token (LockSettler). Only the lease's own
// holder writes that token, so the lock holds it exactly when the attempt
// took it and no release of it applied, until the key's expiry, which
// cannot come before lease.Sent+lease.TTL: a settle that ends before then
// is exact, a later one that finds nothing is LeaseUnknown. A lost attempt
// still on its way to the server after the settle's own command could
// land unseen: on one host the server reads it first, since it was sent
// first.
func SettleLease(ctx context.Context, l Locker, lease Lease) (LeaseState, error) {
	s, ok := l.(LockSettler)
	if !ok || lease.Token == "" || lease.Sent.IsZero() || lease.TTL <= 0 {
		return LeaseUnknown, nil
	}
	held, err := s.Settle(ctx, lease)
	switch {
	case err != nil:
		return LeaseUnknown, err
	case held:
		return LeaseHeld, nil
	case time.Since(lease.Sent) < lease.TTL:
		return LeaseGone, nil
	}
	return LeaseUnknown, nil
}

// WithWatchdog wraps l so that every lease it hands out is refreshed every
// `every` by a background goroutine until the lease is released through
// the wrapper, or a refresh finds it lost (ErrLockNotHeld). A refresh that
// fails otherwise (a network error) is retried at the next tick; if none
// succeeds before the TTL, the lease is lost like any other. The holder
// must call Release, or the watchdog runs on.
//
// Note what a watchdog cannot do: a process that stops entirely (a long GC
// pause, a frozen VM) stops its watchdog too, and its lease expires.
func WithWatchdog(l Locker, every time.Duration) Locker {
	return &watchdogLocker{Locker: l, every: every, dogs: map[leaseID]*watchdog{}}
}

type leaseID struct{ name, token string }

type watchdog struct {
	cancel context.CancelFunc
	done   chan struct{}
}

type watchdogLocker struct {
	Locker
	every time.Duration
	mu    sync.Mutex
	dogs  map[leaseID]*watchdog
}

// Acquire takes the lock and starts the lease's watchdog.
func (w *watchdogLocker) Acquire(ctx context.Context, name string) (Lease, error) {
	lease, err := w.Locker.Acquire(ctx, name)
	if err == nil {
		w.watch(lease)
	}
	return lease, err
}

// TryAcquire makes one attempt and starts the watchdog when it took the
// lock.
func (w *watchdogLocker) TryAcquire(ctx context.Context, name string) (Lease, bool, error) {
	lease, ok, err := w.Locker.TryAcquire(ctx, name)
	if ok && err == nil {
		w.watch(lease)
	}
	return lease, ok, err
}

// Release stops the lease's watchdog, then releases the lock.
func (w *watchdogLocker) Release(ctx context.Context, lease Lease) error {
	w.stop(leaseID{lease.Name, lease.Token})
	return w.Locker.Release(ctx, lease)
}

func (w *watchdogLocker) watch(lease Lease) {
	id := leaseID{lease.Name, lease.Token}
	ctx, cancel := context.WithCancel(context.Background())
	d := &watchdog{cancel: cancel, done: make(chan struct{})}
	w.mu.Lock()
	w.dogs[id] = d
	w.mu.Unlock()
	go func() {
		defer close(d.done)
		defer cancel()
		t := time.NewTicker(w.every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// A refresh may take up to the lease itself: one that answers
			// late still extends a lease that has not ended (the ticker
			// drops the ticks it missed meanwhile).
			rctx, rcancel := context.WithTimeout(ctx, lease.TTL)
			err := w.Locker.Refresh(rctx, lease)
			rcancel()
			if errors.Is(err, ErrLockNotHeld) {
				w.mu.Lock()
				if w.dogs[id] == d {
					delete(w.dogs, id)
				}
				w.mu.Unlock()
				return
			}
		}
	}()
}

// Settle stops the lease's watchdog and settles the lease with the
// wrapped locker (LockSettler); a locker that cannot settle reports an
// error wrapping ErrNotSupported.
func (w *watchdogLocker) Settle(ctx context.Context, lease Lease) (bool, error) {
	s, ok := w.Locker.(LockSettler)
	if !ok {
		return false, fmt.Errorf("settle %q: %w", lease.Name, ErrNotSupported)
	}
	w.stop(leaseID{lease.Name, lease.Token})
	return s.Settle(ctx, lease)
}

func (w *watchdogLocker) stop(id leaseID) {
	w.mu.Lock()
	d := w.dogs[id]
	delete(w.dogs, id)
	w.mu.Unlock()
	if d != nil {
		d.cancel()
		<-d.done
	}
}
