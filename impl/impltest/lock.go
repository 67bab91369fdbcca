package impltest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Lock test parameters. Leases that must not expire during a test are
// long; leases that must expire are a few tens of milliseconds, and every
// wait for an expiry is bounded by lockExpiryWait.
const (
	lockLongTTL    = 30 * time.Second
	lockShortTTL   = 50 * time.Millisecond
	lockExpiryWait = 5 * time.Second
	// lockPrompt bounds how long an Acquire may overrun its context's
	// deadline: far below lockLongTTL, so an Acquire that waited for the
	// lock instead of its deadline fails.
	lockPrompt = 5 * time.Second
	// lockWorkers × lockRounds acquisitions in the mutual exclusion test.
	lockWorkers = 6
	lockRounds  = 15
)

// safeLocks are the strategies whose release and refresh check the token.
var safeLocks = []string{impl.LockToken, impl.LockFenced}

// lockCase is what each lock test receives.
type lockCase struct {
	env      Env
	backend  impl.Backend
	strategy string
}

// locker returns the case's strategy on ks with a long TTL and a short
// naive poll, changed by opt.
func (c lockCase) locker(t *testing.T, ks impl.Keyspace, opt func(*impl.LockOptions)) impl.Locker {
	t.Helper()
	o := impl.LockOptions{Keys: ks, TTL: lockLongTTL, Poll: 5 * time.Millisecond}
	if opt != nil {
		opt(&o)
	}
	l, err := c.backend.(impl.LockBackend).Lock(c.strategy, o)
	if err != nil {
		t.Fatalf("Lock(%q, %+v): %v", c.strategy, o, err)
	}
	return l
}

// lockTest is one conformance test; only lists the strategies it applies
// to (nil: all).
type lockTest struct {
	name string
	only []string
	run  func(t *testing.T, c lockCase)
}

// RunLock runs the lock conformance suite: for every strategy of
// impl.LockStrategies, every test that applies to it, against env, with a
// backend that open connects. env must be a real Redis: leases expire on
// the server's clock.
func RunLock(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	t.Run("Strategies", func(t *testing.T) { testLockStrategies(t, env, open) })
	t.Run("Backoff", testLockBackoff)
	for _, strategy := range impl.LockStrategies() {
		t.Run(strategy, func(t *testing.T) {
			b := openBackend(t, env, open)
			if _, ok := b.(impl.LockBackend); !ok {
				t.Fatalf("%T does not implement impl.LockBackend", b)
			}
			c := lockCase{env: env, backend: b, strategy: strategy}
			for _, tt := range lockTests {
				if tt.only != nil && !slices.Contains(tt.only, strategy) {
					continue
				}
				t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
			}
		})
	}
}

var lockTests = []lockTest{
	{name: "AcquireRelease", run: testLockAcquireRelease},
	{name: "AcquireWaits", run: testLockAcquireWaits},
	{name: "OddNames", run: testLockOddNames},
	{name: "DeadlineEndsWait", run: testLockDeadline},
	{name: "CanceledContext", run: testLockCanceled},
	{name: "LeaseExpires", run: testLockLeaseExpires},
	{name: "NonOwnerRelease", run: testLockNonOwnerRelease},
	{name: "NonOwnerRefresh", run: testLockNonOwnerRefresh},
	{name: "MutualExclusion", run: testLockMutualExclusion},
	{name: "UnfencedWrite", only: []string{impl.LockNaive, impl.LockToken}, run: testLockUnfencedWrite},
	{name: "Fencing", only: []string{impl.LockFenced}, run: testLockFencing},
	{name: "FencingStaleHolder", only: []string{impl.LockFenced}, run: testLockFencingStaleHolder},
	{name: "ScriptFlush", only: safeLocks, run: testLockScriptFlush},
	{name: "Watchdog", only: safeLocks, run: testLockWatchdog},
	{name: "WatchdogLost", only: safeLocks, run: testLockWatchdogLost},
	{name: "NaiveSeconds", only: []string{impl.LockNaive}, run: testLockNaiveSeconds},
	{name: "Settle", only: safeLocks, run: func(t *testing.T, c lockCase) { testLockSettle(t, c, mustTryLock, false) }},
}

// testLockSettle holds a locker with tokens of its own to impl.SettleLease:
// a lease is held while its lock holds its token (and the settle releases
// it), gone after; another holder's lock is left alone; a settle that
// finds nothing once the lease's TTL has passed since it was sent cannot
// tell; a failed Acquire on a held lock carries the token it sent when it
// knows one (always, with wantToken), which settles as gone.
func testLockSettle(t *testing.T, c lockCase, take func(*testing.T, context.Context, impl.Locker, string) impl.Lease, wantToken bool) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	key := impl.LockKeyOf(l, ks, "s")
	settle := func(what string, lease impl.Lease, want impl.LeaseState) {
		t.Helper()
		if got, err := impl.SettleLease(ctx, l, lease); err != nil || got != want {
			t.Errorf("SettleLease(%s) = %s, %v; want %s", what, got, err, want)
		}
	}
	a := take(t, ctx, l, "s")
	if a.Sent.IsZero() || a.TTL <= 0 || a.Sent.After(time.Now()) {
		t.Fatalf("lease %+v: want Sent (in the past) and TTL", a)
	}
	other := a
	other.Token += "-not-mine"
	settle("another's token", other, impl.LeaseGone)
	wantLockHolds(t, ctx, c.env.Admin, key, a.Token)
	settle("a held lease", a, impl.LeaseHeld)
	wantLockGone(t, ctx, c.env.Admin, key)
	settle("a settled lease", a, impl.LeaseGone)
	old := a
	old.Sent = time.Now().Add(-2 * a.TTL)
	settle("a lease sent more than its TTL ago", old, impl.LeaseUnknown)

	b := take(t, ctx, l, "s")
	dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	lease, err := l.Acquire(dctx, "s")
	cancel()
	if err == nil {
		t.Fatalf("Acquire of a held lock succeeded: %+v", lease)
	}
	switch {
	case lease.Token == "" && wantToken:
		t.Errorf("failed Acquire returned lease %+v, want the token it sent", lease)
	case lease.Token != "":
		if lease.Sent.IsZero() || lease.Token == b.Token {
			t.Errorf("failed Acquire returned lease %+v, want its own token and when it was sent", lease)
		}
		settle("a failed acquisition", lease, impl.LeaseGone)
	}
	wantLockHolds(t, ctx, c.env.Admin, key, b.Token)
	mustRelease(t, ctx, l, b)
}

func testLockStrategies(t *testing.T, env Env, open impl.Opener) {
	b := openBackend(t, env, open)
	lb, ok := b.(impl.LockBackend)
	if !ok {
		t.Fatalf("%T does not implement impl.LockBackend", b)
	}
	ks := env.Keyspace(t)
	for _, name := range impl.LockStrategies() {
		if _, err := lb.Lock(name, impl.LockOptions{Keys: ks}); err != nil {
			t.Errorf("Lock(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "NAIVE", "token ", "redlock"} {
		if _, err := lb.Lock(name, impl.LockOptions{Keys: ks}); !errors.Is(err, impl.ErrUnknownStrategy) {
			t.Errorf("Lock(%q) error = %v, want ErrUnknownStrategy", name, err)
		}
	}
	for _, tc := range []struct {
		name string
		opts impl.LockOptions
	}{
		{"no keys", impl.LockOptions{}},
		{"TTL under 1ms", impl.LockOptions{Keys: ks, TTL: time.Microsecond}},
		{"negative TTL", impl.LockOptions{Keys: ks, TTL: -time.Second}},
		{"back-off max < min", impl.LockOptions{Keys: ks, RetryMin: time.Second, RetryMax: time.Millisecond}},
		{"watchdog slower than TTL", impl.LockOptions{Keys: ks, TTL: time.Second, Watchdog: true, WatchdogEvery: 2 * time.Second}},
	} {
		if _, err := lb.Lock(impl.LockToken, tc.opts); err == nil {
			t.Errorf("Lock with %s: no error", tc.name)
		}
	}
	if _, err := lb.Lock(impl.LockNaive, impl.LockOptions{Keys: ks, Watchdog: true}); !errors.Is(err, impl.ErrNotSupported) {
		t.Errorf("naive Lock with a watchdog: error = %v, want ErrNotSupported", err)
	}
}

func testLockBackoff(t *testing.T) {
	o := impl.LockOptions{RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond}
	for n, ceiling := range []time.Duration{1, 2, 4, 8, 16, 20, 20} {
		ceiling *= time.Millisecond
		var top time.Duration
		for range 2000 {
			d := o.Backoff(n)
			if d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %s, want within [0, %s]", n, d, ceiling)
			}
			top = max(top, d)
		}
		if top < ceiling/2 {
			t.Errorf("Backoff(%d): largest of 2000 draws %s, want a spread up to %s", n, top, ceiling)
		}
	}
	for _, n := range []int{62, 63, 64, 1000} { // no overflow into a negative or tiny cap
		if d := o.Backoff(n); d < 0 || d > o.RetryMax {
			t.Errorf("Backoff(%d) = %s, want within [0, %s]", n, d, o.RetryMax)
		}
	}
}

func testLockAcquireRelease(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	key := impl.LockKey(ks, "order")

	a := mustTryLock(t, ctx, l, "order")
	if a.Name != "order" || a.TTL != lockLongTTL || a.Retries != 0 {
		t.Errorf("lease = %+v, want name order, TTL %s, no retries", a, lockLongTTL)
	}
	switch c.strategy {
	case impl.LockNaive:
		if a.Token != impl.NaiveLockValue || a.Fence != 0 {
			t.Errorf("naive lease token %q fence %d, want %q and 0", a.Token, a.Fence, impl.NaiveLockValue)
		}
	case impl.LockToken:
		if len(a.Token) < 16 || a.Fence != 0 {
			t.Errorf("token lease token %q fence %d, want a random token and 0", a.Token, a.Fence)
		}
	case impl.LockFenced:
		if len(a.Token) < 16 || a.Fence != 1 {
			t.Errorf("fenced lease token %q fence %d, want a random token and fence 1", a.Token, a.Fence)
		}
	}
	wantLockHolds(t, ctx, c.env.Admin, key, a.Token)
	if pttl := c.env.Admin.PTTL(ctx, key).Val(); pttl <= 0 || pttl > lockLongTTL {
		t.Errorf("lock PTTL %s, want within (0, %s]", pttl, lockLongTTL)
	}
	if b, ok, err := l.TryAcquire(ctx, "order"); err != nil || ok {
		t.Errorf("TryAcquire of a held lock = %+v, %v, %v; want not taken, nil", b, ok, err)
	}
	other := mustTryLock(t, ctx, l, "other") // another name is another lock
	mustRelease(t, ctx, l, a)
	wantLockGone(t, ctx, c.env.Admin, key)
	wantLockHolds(t, ctx, c.env.Admin, impl.LockKey(ks, "other"), other.Token)

	b := mustTryLock(t, ctx, l, "order")
	if c.strategy != impl.LockNaive && b.Token == a.Token {
		t.Errorf("two acquisitions got the same token %q", a.Token)
	}
	if c.strategy == impl.LockFenced && b.Fence <= a.Fence {
		t.Errorf("fences %d then %d, want increasing", a.Fence, b.Fence)
	}
	mustRelease(t, ctx, l, b)
	mustRelease(t, ctx, l, other)
}

func testLockAcquireWaits(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	a := mustTryLock(t, ctx, l, "l")
	released := make(chan error, 1)
	go func() {
		time.Sleep(40 * time.Millisecond)
		released <- l.Release(ctx, a)
	}()
	b, err := l.Acquire(ctx, "l")
	if err != nil {
		t.Fatalf("Acquire while another releases: %v", err)
	}
	if err := <-released; err != nil {
		t.Fatalf("Release: %v", err)
	}
	if b.Retries < 1 {
		t.Errorf("Acquire that waited reports %d retries, want at least 1", b.Retries)
	}
	wantLockHolds(t, ctx, c.env.Admin, impl.LockKey(ks, "l"), b.Token)
	mustRelease(t, ctx, l, b)
}

func testLockOddNames(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	leases := make([]impl.Lease, len(oddItems))
	for i, name := range oddItems {
		leases[i] = mustTryLock(t, ctx, l, name) // distinct names never share a key
	}
	var want []string
	for _, name := range oddItems {
		want = append(want, impl.LockKey(ks, name))
		if c.strategy == impl.LockFenced {
			want = append(want, impl.LockFenceKey(ks, name))
		}
	}
	slices.Sort(want)
	if got := scanKeys(t, ctx, c.env.Admin, ks); !slices.Equal(got, want) {
		t.Errorf("keys under %q:\n got %q\nwant %q", ks.Prefix(), got, want)
	}
	for _, lease := range leases {
		mustRelease(t, ctx, l, lease)
	}
	for _, name := range oddItems {
		wantLockGone(t, ctx, c.env.Admin, impl.LockKey(ks, name))
	}
}

func testLockDeadline(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	// Pauses between attempts as long as the lease: an Acquire that slept
	// its pause out instead of watching its context would overrun the
	// deadline by up to lockLongTTL.
	l := c.locker(t, ks, func(o *impl.LockOptions) {
		o.Poll = lockLongTTL
		o.RetryMin, o.RetryMax = lockLongTTL, lockLongTTL
	})
	held := mustTryLock(t, ctx, l, "busy")
	for _, wait := range []time.Duration{time.Millisecond, 30 * time.Millisecond, 120 * time.Millisecond} {
		dctx, cancel := context.WithTimeout(ctx, wait)
		start := time.Now()
		lease, err := l.Acquire(dctx, "busy")
		took := time.Since(start)
		cancel()
		if !errors.Is(err, impl.ErrLockNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Acquire with a %s deadline on a held lock: error %v, want ErrLockNotAcquired and DeadlineExceeded", wait, err)
		}
		if took > wait+lockPrompt {
			t.Errorf("Acquire with a %s deadline returned after %s", wait, took)
		}
		// A token only from an attempt the deadline cut off, with when
		// it was sent (for a settle).
		if lease.Token != "" && lease.Sent.IsZero() || lease.Retries < 0 {
			t.Errorf("failed Acquire returned lease %+v", lease)
		}
	}
	wantLockHolds(t, ctx, c.env.Admin, impl.LockKey(ks, "busy"), held.Token)
	mustRelease(t, ctx, l, held)
}

func testLockCanceled(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	held := mustTryLock(t, ctx, l, "l")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Acquire(canceled, "free"); !errors.Is(err, impl.ErrLockNotAcquired) || !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a canceled context: error %v, want ErrLockNotAcquired and Canceled", err)
	}
	if _, _, err := l.TryAcquire(canceled, "free"); !errors.Is(err, context.Canceled) {
		t.Errorf("TryAcquire with a canceled context: error %v, want Canceled", err)
	}
	if err := l.Release(canceled, held); !errors.Is(err, context.Canceled) {
		t.Errorf("Release with a canceled context: error %v, want Canceled", err)
	}
	if err := l.Write(canceled, "r", held, "v"); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a canceled context: error %v, want Canceled", err)
	}
	wantLockHolds(t, ctx, c.env.Admin, impl.LockKey(ks, "l"), held.Token)
	wantLockGone(t, ctx, c.env.Admin, impl.LockKey(ks, "free"))
	mustRelease(t, ctx, l, held)
}

func testLockLeaseExpires(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	short := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = lockShortTTL })
	long := c.locker(t, ks, nil)
	key := impl.LockKey(ks, "l")

	old := mustTryLock(t, ctx, short, "l")
	// Nobody refreshes: the lease ends on the server's clock and another
	// holder gets the lock.
	next := waitLock(t, ctx, long, "l")
	wantLockHolds(t, ctx, c.env.Admin, key, next.Token)

	if c.strategy == impl.LockNaive {
		// The seed's bug: the expired holder's release deletes the new
		// holder's lock.
		if err := short.Release(ctx, old); err != nil {
			t.Fatalf("naive Release after expiry: %v", err)
		}
		wantLockGone(t, ctx, c.env.Admin, key)
		return
	}
	if err := short.Release(ctx, old); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Release of an expired lease: error %v, want ErrLockNotHeld", err)
	}
	if err := short.Refresh(ctx, old); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Refresh of an expired lease: error %v, want ErrLockNotHeld", err)
	}
	wantLockHolds(t, ctx, c.env.Admin, key, next.Token)
	if pttl := c.env.Admin.PTTL(ctx, key).Val(); pttl <= lockShortTTL {
		t.Errorf("new holder's lease PTTL %s: the expired holder's refresh shortened it", pttl)
	}
	mustRelease(t, ctx, long, next)
	wantLockGone(t, ctx, c.env.Admin, key)

	// An expired lease nobody took: release is refused all the same.
	gone := mustTryLock(t, ctx, short, "alone")
	waitGone(t, ctx, c.env.Admin, impl.LockKey(ks, "alone"))
	if err := short.Release(ctx, gone); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Release of an expired, untaken lease: error %v, want ErrLockNotHeld", err)
	}
}

func testLockNonOwnerRelease(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	key := impl.LockKey(ks, "l")
	owner := mustTryLock(t, ctx, l, "l")
	intruder := impl.Lease{Name: "l", Token: "not-the-owner", TTL: lockLongTTL}

	if c.strategy == impl.LockNaive {
		// The seed's lock cannot tell holders apart: anyone's DEL ends the
		// owner's lease.
		if err := l.Release(ctx, intruder); err != nil {
			t.Fatalf("naive Release by a non-owner: %v", err)
		}
		wantLockGone(t, ctx, c.env.Admin, key)
		return
	}
	for _, lease := range []impl.Lease{
		intruder,
		{Name: "l", TTL: lockLongTTL}, // no token at all
		{Name: "l", Token: owner.Token + "x", TTL: lockLongTTL}, // a near miss
		{Name: "other", Token: owner.Token, TTL: lockLongTTL},   // the token on another lock
	} {
		if err := l.Release(ctx, lease); !errors.Is(err, impl.ErrLockNotHeld) {
			t.Errorf("Release by non-owner %+v: error %v, want ErrLockNotHeld", lease, err)
		}
	}
	wantLockHolds(t, ctx, c.env.Admin, key, owner.Token)
	mustRelease(t, ctx, l, owner)
	if err := l.Release(ctx, owner); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("second Release: error %v, want ErrLockNotHeld", err)
	}
}

func testLockNonOwnerRefresh(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	const ttl = 2 * time.Second
	l := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = ttl })
	key := impl.LockKey(ks, "l")
	owner := mustTryLock(t, ctx, l, "l")
	if c.strategy == impl.LockNaive {
		if err := l.Refresh(ctx, owner); !errors.Is(err, impl.ErrNotSupported) {
			t.Errorf("naive Refresh: error %v, want ErrNotSupported", err)
		}
		mustRelease(t, ctx, l, owner)
		return
	}
	time.Sleep(50 * time.Millisecond)
	before := c.env.Admin.PTTL(ctx, key).Val()
	for _, lease := range []impl.Lease{
		{Name: "l", Token: "not-the-owner", TTL: time.Hour},
		{Name: "l", TTL: time.Hour},
	} {
		if err := l.Refresh(ctx, lease); !errors.Is(err, impl.ErrLockNotHeld) {
			t.Errorf("Refresh by non-owner: error %v, want ErrLockNotHeld", err)
		}
	}
	if pttl := c.env.Admin.PTTL(ctx, key).Val(); pttl > before {
		t.Errorf("PTTL went from %s to %s after refused refreshes", before, pttl)
	}
	if err := l.Refresh(ctx, owner); err != nil {
		t.Fatalf("owner's Refresh: %v", err)
	}
	if pttl := c.env.Admin.PTTL(ctx, key).Val(); pttl <= before || pttl > ttl {
		t.Errorf("owner's Refresh: PTTL %s, want above %s and at most %s", pttl, before, ttl)
	}
	wantLockHolds(t, ctx, c.env.Admin, key, owner.Token)
	mustRelease(t, ctx, l, owner)
	if err := l.Refresh(ctx, owner); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Refresh after Release: error %v, want ErrLockNotHeld", err)
	}
	wantLockGone(t, ctx, c.env.Admin, key)
}

func testLockMutualExclusion(t *testing.T, c lockCase) {
	// With leases that never expire, every lock — the seed's too — keeps
	// holders apart: an unguarded read-modify-write inside loses nothing.
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, func(o *impl.LockOptions) { o.Poll = time.Millisecond })
	counter := ks.Key("counter")
	var (
		inside, maxInside atomic.Int64
		mu                sync.Mutex
		errs              []error
		fences            []int64
	)
	fail := func(err error) bool {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		return false
	}
	hammer(lockWorkers, lockRounds, func() bool {
		lease, err := l.Acquire(ctx, "hot")
		if err != nil {
			return fail(err)
		}
		n := inside.Add(1)
		for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
		}
		v, err := c.env.Admin.Get(ctx, counter).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fail(err)
		}
		if err := c.env.Admin.Set(ctx, counter, v+1, 0).Err(); err != nil {
			return fail(err)
		}
		inside.Add(-1)
		mu.Lock()
		fences = append(fences, lease.Fence)
		mu.Unlock()
		if err := l.Release(ctx, lease); err != nil {
			return fail(err)
		}
		return true
	})
	if len(errs) > 0 {
		t.Fatalf("%d failures, first: %v", len(errs), errs[0])
	}
	if maxInside.Load() != 1 {
		t.Errorf("%d holders inside at once, want 1", maxInside.Load())
	}
	want := int64(lockWorkers * lockRounds)
	if got, err := c.env.Admin.Get(ctx, counter).Int64(); err != nil || got != want {
		t.Errorf("counter = %d, %v; want %d (lost updates)", got, err, want)
	}
	if c.strategy == impl.LockFenced {
		slices.Sort(fences)
		for i, f := range fences {
			if f != int64(i+1) {
				t.Fatalf("fences %v, want 1..%d each once", fences, want)
			}
		}
	}
}

func testLockUnfencedWrite(t *testing.T, c lockCase) {
	// Without a fencing token the resource accepts whatever arrives: a
	// stale holder's late write overwrites the newer holder's.
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	old := mustTryLock(t, ctx, l, "l")
	stale := old
	mustRelease(t, ctx, l, old)
	fresh := mustTryLock(t, ctx, l, "l")
	if err := l.Write(ctx, "acct", fresh, "new"); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := l.Write(ctx, "acct", stale, "old"); err != nil {
		t.Fatalf("stale Write: %v", err)
	}
	wantResource(t, ctx, c.env.Admin, ks, "acct", map[string]string{
		impl.ResourceValue: "old", impl.ResourceWrites: "2",
	}, []string{"0:new", "0:old"})
	mustRelease(t, ctx, l, fresh)
}

func testLockFencing(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	var leases []impl.Lease
	for i := range 3 {
		lease := mustTryLock(t, ctx, l, "l")
		if lease.Fence != int64(i+1) {
			t.Errorf("acquisition %d: fence %d, want %d", i+1, lease.Fence, i+1)
		}
		leases = append(leases, lease)
		mustRelease(t, ctx, l, lease)
	}
	if n, err := c.env.Admin.Get(ctx, impl.LockFenceKey(ks, "l")).Int64(); err != nil || n != 3 {
		t.Errorf("fence counter = %d, %v; want 3", n, err)
	}
	if pttl := c.env.Admin.PTTL(ctx, impl.LockFenceKey(ks, "l")).Val(); pttl != -1 {
		t.Errorf("fence counter PTTL %s, want none: tokens must keep increasing", pttl)
	}
	mustWrite(t, ctx, l, "acct", leases[2], "c")
	for _, older := range []impl.Lease{leases[1], leases[0]} {
		if err := l.Write(ctx, "acct", older, "stale"); !errors.Is(err, impl.ErrStaleFence) {
			t.Errorf("Write with fence %d after %d: error %v, want ErrStaleFence", older.Fence, leases[2].Fence, err)
		}
	}
	mustWrite(t, ctx, l, "acct", leases[2], "c2") // the same holder writes again
	if err := l.Write(ctx, "acct", impl.Lease{Name: "l", Token: "t"}, "nofence"); !errors.Is(err, impl.ErrStaleFence) {
		t.Errorf("Write without a fencing token: error %v, want ErrStaleFence", err)
	}
	wantResource(t, ctx, c.env.Admin, ks, "acct", map[string]string{
		impl.ResourceValue: "c2", impl.ResourceFence: "3", impl.ResourceWrites: "2", impl.ResourceRejected: "2",
	}, []string{"3:c", "3:c2"})
	// Each resource keeps its own newest token; odd ids work.
	mustWrite(t, ctx, l, "{odd}:id", leases[0], "a")
	wantResource(t, ctx, c.env.Admin, ks, "{odd}:id", map[string]string{
		impl.ResourceValue: "a", impl.ResourceFence: "1", impl.ResourceWrites: "1",
	}, []string{"1:a"})
}

func testLockFencingStaleHolder(t *testing.T, c lockCase) {
	// The holder pauses past its lease; another takes the lock and writes;
	// the paused holder's write is rejected.
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	short := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = lockShortTTL })
	long := c.locker(t, ks, nil)
	paused := mustTryLock(t, ctx, short, "l")
	next := waitLock(t, ctx, long, "l")
	if next.Fence <= paused.Fence {
		t.Fatalf("fences %d then %d, want increasing", paused.Fence, next.Fence)
	}
	mustWrite(t, ctx, long, "acct", next, "fresh")
	if err := short.Write(ctx, "acct", paused, "stale"); !errors.Is(err, impl.ErrStaleFence) {
		t.Errorf("paused holder's Write: error %v, want ErrStaleFence", err)
	}
	if err := short.Release(ctx, paused); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("paused holder's Release: error %v, want ErrLockNotHeld", err)
	}
	wantResource(t, ctx, c.env.Admin, ks, "acct", map[string]string{
		impl.ResourceValue: "fresh", impl.ResourceFence: strconv.FormatInt(next.Fence, 10),
		impl.ResourceWrites: "1", impl.ResourceRejected: "1",
	}, []string{impl.FormatResourceEntry(next.Fence, "fresh")})
	mustRelease(t, ctx, long, next)
}

func testLockScriptFlush(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	flush := func() {
		t.Helper()
		if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
	}
	flush()
	a := mustTryLock(t, ctx, l, "l")
	flush()
	if err := l.Refresh(ctx, a); err != nil {
		t.Errorf("Refresh after SCRIPT FLUSH: %v", err)
	}
	flush()
	if err := l.Release(ctx, impl.Lease{Name: "l", Token: "x", TTL: time.Second}); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("non-owner Release after SCRIPT FLUSH: error %v, want ErrLockNotHeld", err)
	}
	flush()
	mustWrite(t, ctx, l, "r", a, "v")
	flush()
	mustRelease(t, ctx, l, a)
	wantLockGone(t, ctx, c.env.Admin, impl.LockKey(ks, "l"))
}

func testLockWatchdog(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	// Short enough that an unrefreshed lease ends within the hold, long
	// enough that a loaded test machine gets a refresh through in time: a
	// refresh is due every 200 ms, so only a stall of 800 ms fails it (250
	// ms, with a refresh every 50 ms, failed 1 run in 6 on two cores
	// shared by a dozen processes).
	const ttl = time.Second
	l := c.locker(t, ks, func(o *impl.LockOptions) {
		o.TTL, o.Watchdog, o.WatchdogEvery = ttl, true, ttl/5
	})
	other := c.locker(t, ks, nil)
	key := impl.LockKey(ks, "l")
	for _, acquire := range []func() impl.Lease{
		func() impl.Lease { return mustTryLock(t, ctx, l, "l") },
		func() impl.Lease {
			lease, err := l.Acquire(ctx, "l")
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			return lease
		},
	} {
		lease := acquire()
		// Hold for two TTLs: the watchdog keeps the lease alive.
		deadline := time.Now().Add(2 * ttl)
		for time.Now().Before(deadline) {
			if b, ok, err := other.TryAcquire(ctx, "l"); err != nil || ok {
				t.Fatalf("TryAcquire while the watchdog holds the lease = %+v, %v, %v", b, ok, err)
			}
			time.Sleep(ttl / 4)
		}
		wantLockHolds(t, ctx, c.env.Admin, key, lease.Token)
		mustRelease(t, ctx, l, lease)
		wantLockGone(t, ctx, c.env.Admin, key)
	}
	// Once released, the lease is no longer refreshed: a lock taken without
	// a watchdog by the same locker expires on time.
	plain := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = ttl })
	lease := mustTryLock(t, ctx, plain, "l")
	waitGone(t, ctx, c.env.Admin, key)
	if err := plain.Release(ctx, lease); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Release of an expired lease: error %v, want ErrLockNotHeld", err)
	}
}

func testLockWatchdogLost(t *testing.T, c lockCase) {
	// A lease lost anyway (here: deleted behind the holder's back) is not
	// resurrected by the watchdog, and its release is refused.
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	const ttl = 60 * time.Millisecond
	l := c.locker(t, ks, func(o *impl.LockOptions) {
		o.TTL, o.Watchdog, o.WatchdogEvery = ttl, true, ttl/4
	})
	key := impl.LockKey(ks, "l")
	lease := mustTryLock(t, ctx, l, "l")
	if err := c.env.Admin.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	intruder := mustTryLock(t, ctx, c.locker(t, ks, nil), "l")
	time.Sleep(3 * ttl)
	wantLockHolds(t, ctx, c.env.Admin, key, intruder.Token)
	if err := l.Release(ctx, lease); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Release of a lost lease: error %v, want ErrLockNotHeld", err)
	}
	wantLockHolds(t, ctx, c.env.Admin, key, intruder.Token)
}

func testLockNaiveSeconds(t *testing.T, c lockCase) {
	// The seed's get_lock(lock_key, 10): SET lock "locked" NX EX 10.
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = 10 * time.Second })
	key := impl.LockKey(ks, "order_lock")
	lease := mustTryLock(t, ctx, l, "order_lock")
	wantLockHolds(t, ctx, c.env.Admin, key, impl.NaiveLockValue)
	if ttl := c.env.Admin.TTL(ctx, key).Val(); ttl <= 8*time.Second || ttl > 10*time.Second {
		t.Errorf("TTL %s, want about 10s", ttl)
	}
	mustRelease(t, ctx, l, lease)
}

func mustTryLock(t *testing.T, ctx context.Context, l impl.Locker, name string) impl.Lease {
	t.Helper()
	lease, ok, err := l.TryAcquire(ctx, name)
	if err != nil || !ok {
		t.Fatalf("TryAcquire(%q) on a free lock = %+v, %v, %v; want taken", name, lease, ok, err)
	}
	return lease
}

func mustRelease(t *testing.T, ctx context.Context, l impl.Locker, lease impl.Lease) {
	t.Helper()
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release(%q): %v", lease.Name, err)
	}
}

func mustWrite(t *testing.T, ctx context.Context, l impl.Locker, resource string, lease impl.Lease, value string) {
	t.Helper()
	if err := l.Write(ctx, resource, lease, value); err != nil {
		t.Fatalf("Write(%q, fence %d, %q): %v", resource, lease.Fence, value, err)
	}
}

// waitLock takes name with l once the current lease ends, within
// lockExpiryWait.
func waitLock(t *testing.T, ctx context.Context, l impl.Locker, name string) impl.Lease {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, lockExpiryWait)
	defer cancel()
	lease, err := l.Acquire(wctx, name)
	if err != nil {
		t.Fatalf("Acquire(%q) after the lease should have expired: %v", name, err)
	}
	return lease
}

// waitGone waits, within lockExpiryWait, for key to expire.
func waitGone(t *testing.T, ctx context.Context, admin redis.UniversalClient, key string) {
	t.Helper()
	deadline := time.Now().Add(lockExpiryWait)
	for time.Now().Before(deadline) {
		n, err := admin.Exists(ctx, key).Result()
		if err != nil {
			t.Fatalf("EXISTS %q: %v", key, err)
		}
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("lock %q still exists after %s", key, lockExpiryWait)
}

func wantLockHolds(t *testing.T, ctx context.Context, admin redis.UniversalClient, key, token string) {
	t.Helper()
	if got, err := admin.Get(ctx, key).Result(); err != nil || got != token {
		t.Errorf("lock %q holds %q, %v; want %q", key, got, err, token)
	}
}

func wantLockGone(t *testing.T, ctx context.Context, admin redis.UniversalClient, key string) {
	t.Helper()
	if n, err := admin.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Errorf("lock %q exists (%d, %v), want it gone", key, n, err)
	}
}

// wantResource checks a protected resource's hash and log on the server.
func wantResource(t *testing.T, ctx context.Context, admin redis.UniversalClient, ks impl.Keyspace, id string, fields map[string]string, log []string) {
	t.Helper()
	got, err := admin.HGetAll(ctx, impl.ResourceKey(ks, id)).Result()
	if err != nil {
		t.Fatalf("HGETALL: %v", err)
	}
	for k, v := range fields {
		if got[k] != v {
			t.Errorf("resource %q field %s = %q, want %q (all: %v)", id, k, got[k], v, got)
		}
	}
	for k := range got {
		if _, ok := fields[k]; !ok {
			t.Errorf("resource %q has unexpected field %s=%q", id, k, got[k])
		}
	}
	entries, err := admin.LRange(ctx, impl.ResourceLogKey(ks, id), 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE: %v", err)
	}
	if !slices.Equal(entries, log) {
		t.Errorf("resource %q log %q, want %q", id, entries, log)
	}
	for _, e := range entries {
		if _, _, err := impl.ParseResourceEntry(e); err != nil {
			t.Errorf("log entry: %v", err)
		}
	}
}
