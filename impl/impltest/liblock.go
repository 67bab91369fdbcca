package impltest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

// libLockShortTTL is the lease that must expire in the library tests.
const libLockShortTTL = 1500 * time.Millisecond

// libLockLostWait is how long the lost-key test gives rueidislock to
// notice that its key was deleted.
const libLockLostWait = 500 * time.Millisecond

// libLockClaims are the guarantees each lock library documents, which
// its conformance tests hold it to; a test of a guarantee the library
// does not claim is skipped with the reason.
type libLockClaims struct {
	// expires: a lease nobody refreshes ends after its TTL (rueidislock
	// extends its lease in the background for as long as it is held).
	expires bool
	// refresh: the holder can extend its lease on demand.
	refresh bool
	// lostCancels: the library notices on its own that its key is gone
	// and ends the lease (rueidislock, through client-side caching).
	lostCancels bool
}

var libLockClaimsOf = map[string]libLockClaims{
	impl.LockRedsync:     {expires: true, refresh: true},
	impl.LockRedislock:   {expires: true, refresh: true},
	impl.LockRueidislock: {lostCancels: true},
}

// RunLockLibraries runs the conformance tests of the lock library
// strategies against env with a backend that open connects: each library
// built on the backend's client is held to the guarantees it documents
// (non-owner release refused, a lease that ends, an Acquire bounded by its
// context, ...); the others must be refused with impl.ErrNotSupported.
func RunLockLibraries(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	for _, strategy := range impl.LockLibraryStrategies() {
		t.Run(strategy, func(t *testing.T) {
			b := openBackend(t, env, open)
			lb := b.(impl.LockBackend)
			lib, _ := impl.LibraryOf(strategy)
			if lib.Backend != b.Name() {
				_, err := lb.Lock(strategy, impl.LockOptions{Keys: env.Keyspace(t)})
				if !errors.Is(err, impl.ErrNotSupported) || !strings.Contains(err.Error(), lib.Backend) {
					t.Fatalf("%s Lock(%s), a library built on %s: error %v, want ErrNotSupported naming %s", b.Name(), strategy, lib.Backend, err, lib.Backend)
				}
				return
			}
			c := lockCase{env: env, backend: b, strategy: strategy}
			claims := libLockClaimsOf[strategy]
			t.Run("AcquireRelease", func(t *testing.T) { testLibLockAcquireRelease(t, c) })
			t.Run("NonOwnerRelease", func(t *testing.T) { testLibLockNonOwnerRelease(t, c) })
			t.Run("DeadlineEndsWait", func(t *testing.T) { testLibLockDeadline(t, c) })
			t.Run("AcquireWaits", func(t *testing.T) { testLibLockAcquireWaits(t, c) })
			t.Run("LeaseExpires", func(t *testing.T) {
				if !claims.expires {
					t.Skipf("%s does not claim it: it extends a held lease in the background until released", strategy)
				}
				testLibLockLeaseExpires(t, c)
			})
			t.Run("Refresh", func(t *testing.T) {
				if !claims.refresh {
					t.Skipf("%s does not claim it: it has no manual refresh (it extends by itself)", strategy)
				}
				testLibLockRefresh(t, c)
			})
			t.Run("LostKeyEndsLease", func(t *testing.T) {
				if !claims.lostCancels {
					t.Skipf("%s does not claim it: it learns that its key is gone only when it next releases or refreshes", strategy)
				}
				testLibLockLostKey(t, c)
			})
			t.Run("Settle", func(t *testing.T) { testLockSettle(t, c, libTake, true) })
			t.Run("Settings", func(t *testing.T) {
				l := c.locker(t, env.Keyspace(t), nil)
				ls, ok := l.(impl.LibrarySettings)
				if !ok {
					t.Fatalf("%T has no library settings", l)
				}
				// A test binary may carry no module versions: "(unknown)".
				if got := ls.LibrarySettings()["library"]; !strings.HasPrefix(got, lib.Package+" ") {
					t.Errorf("library setting %q, want %q and its version", got, lib.Package)
				}
			})
		})
	}
}

func testLibLockAcquireRelease(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	key := impl.LockKeyOf(l, ks, "order")
	if !strings.HasPrefix(key, ks.Prefix()) {
		t.Fatalf("lock key %q is outside the keyspace %q", key, ks.Prefix())
	}
	a := libTake(t, ctx, l, "order")
	if a.Name != "order" || a.Token == "" || a.Fence != 0 {
		t.Errorf("lease = %+v, want name order, a token, no fence", a)
	}
	wantLockHolds(t, ctx, c.env.Admin, key, a.Token)
	if b, ok, err := l.TryAcquire(ctx, "order"); err != nil || ok {
		t.Errorf("TryAcquire of a held lock = %+v, %v, %v; want not taken, nil", b, ok, err)
	}
	mustRelease(t, ctx, l, a)
	wantLockGone(t, ctx, c.env.Admin, key)
	b := libTake(t, ctx, l, "order")
	if b.Token == a.Token {
		t.Errorf("two acquisitions got the same token")
	}
	mustRelease(t, ctx, l, b)
	for _, k := range scanKeys(t, ctx, c.env.Admin, ks) {
		t.Errorf("key %q left after every release", k)
	}
}

func testLibLockNonOwnerRelease(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	key := impl.LockKeyOf(l, ks, "l")
	owner := libTake(t, ctx, l, "l")
	for _, lease := range []impl.Lease{
		{Name: "l", Token: "not-the-owner", TTL: lockLongTTL},
		{Name: "l", TTL: lockLongTTL},
		{Name: "other", Token: owner.Token, TTL: lockLongTTL},
	} {
		if err := l.Release(ctx, lease); !errors.Is(err, impl.ErrLockNotHeld) {
			t.Errorf("Release by non-owner %q/%q: error %v, want ErrLockNotHeld", lease.Name, lease.Token, err)
		}
	}
	wantLockHolds(t, ctx, c.env.Admin, key, owner.Token)
	mustRelease(t, ctx, l, owner)
	if err := l.Release(ctx, owner); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("second Release: error %v, want ErrLockNotHeld", err)
	}
}

func testLibLockDeadline(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	held := libTake(t, ctx, l, "busy")
	for _, wait := range []time.Duration{time.Millisecond, 120 * time.Millisecond} {
		dctx, cancel := context.WithTimeout(ctx, wait)
		start := time.Now()
		_, err := l.Acquire(dctx, "busy")
		took := time.Since(start)
		cancel()
		if !errors.Is(err, impl.ErrLockNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Acquire with a %s deadline on a held lock: error %v, want ErrLockNotAcquired and DeadlineExceeded", wait, err)
		}
		if took > wait+lockPrompt {
			t.Errorf("Acquire with a %s deadline returned after %s", wait, took)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Acquire(canceled, "free"); !errors.Is(err, impl.ErrLockNotAcquired) || !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a canceled context: error %v, want ErrLockNotAcquired and Canceled", err)
	}
	wantLockHolds(t, ctx, c.env.Admin, impl.LockKeyOf(l, ks, "busy"), held.Token)
	mustRelease(t, ctx, l, held)
}

func testLibLockAcquireWaits(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, nil)
	a := libTake(t, ctx, l, "l")
	released := make(chan error, 1)
	go func() {
		time.Sleep(40 * time.Millisecond)
		released <- l.Release(ctx, a)
	}()
	wctx, cancel := context.WithTimeout(ctx, lockExpiryWait)
	defer cancel()
	b, err := l.Acquire(wctx, "l")
	if err != nil {
		t.Fatalf("Acquire while another releases: %v", err)
	}
	if err := <-released; err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantLockHolds(t, ctx, c.env.Admin, impl.LockKeyOf(l, ks, "l"), b.Token)
	mustRelease(t, ctx, l, b)
}

func testLibLockLeaseExpires(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	// Not lockShortTTL: redsync gives each try 5% of the expiry, and
	// 2.5 ms (or 20) is too little on a busy test machine.
	short := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = libLockShortTTL })
	long := c.locker(t, ks, nil)
	key := impl.LockKeyOf(long, ks, "l")
	old := libTake(t, ctx, short, "l")
	next := waitLock(t, ctx, long, "l")
	wantLockHolds(t, ctx, c.env.Admin, key, next.Token)
	if err := short.Release(ctx, old); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Release of an expired lease: error %v, want ErrLockNotHeld", err)
	}
	wantLockHolds(t, ctx, c.env.Admin, key, next.Token)
	mustRelease(t, ctx, long, next)
}

func testLibLockRefresh(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	const ttl = 2 * time.Second
	l := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = ttl })
	key := impl.LockKeyOf(l, ks, "l")
	owner := libTake(t, ctx, l, "l")
	time.Sleep(50 * time.Millisecond)
	before := c.env.Admin.PTTL(ctx, key).Val()
	if err := l.Refresh(ctx, impl.Lease{Name: "l", Token: "not-the-owner", TTL: time.Hour}); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Refresh by a non-owner: error %v, want ErrLockNotHeld", err)
	}
	if err := l.Refresh(ctx, owner); err != nil {
		t.Fatalf("owner's Refresh: %v", err)
	}
	if pttl := c.env.Admin.PTTL(ctx, key).Val(); pttl <= before || pttl > ttl {
		t.Errorf("owner's Refresh: PTTL %s, want above %s and at most %s", pttl, before, ttl)
	}
	mustRelease(t, ctx, l, owner)
	if err := l.Refresh(ctx, owner); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Refresh after Release: error %v, want ErrLockNotHeld", err)
	}
}

func testLibLockLostKey(t *testing.T, c lockCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	l := c.locker(t, ks, func(o *impl.LockOptions) { o.TTL = time.Second })
	key := impl.LockKeyOf(l, ks, "l")
	lease := libTake(t, ctx, l, "l")
	// Another program deletes the key: the library's README says the
	// lease's context is canceled at once, and the lock can be taken.
	if err := c.env.Admin.Del(ctx, key).Err(); err != nil {
		t.Fatalf("DEL %s: %v", key, err)
	}
	// "At once" is an invalidation pushed to the library's connection
	// and one script: far less than the pause given here.
	time.Sleep(libLockLostWait)
	if err := l.Release(ctx, lease); !errors.Is(err, impl.ErrLockNotHeld) {
		t.Errorf("Release of a lease whose key was deleted %s before: error %v, want ErrLockNotHeld", libLockLostWait, err)
	}
	next := waitLock(t, ctx, l, "l")
	wantLockHolds(t, ctx, c.env.Admin, key, next.Token)
	mustRelease(t, ctx, l, next)
}

// libTakeAttempts bounds libTake's attempts.
const libTakeAttempts = 10

// libTake takes a free lock with TryAcquire, trying again when an attempt
// timed out: redsync gives a try 5% of the expiry and rueidislock 20 ms
// (TryNextAfter), budgets a loaded test machine running -race can
// overrun. What these tests hold the libraries to is not how fast they
// are.
func libTake(t *testing.T, ctx context.Context, l impl.Locker, name string) impl.Lease {
	t.Helper()
	var err error
	for range libTakeAttempts {
		var lease impl.Lease
		var ok bool
		lease, ok, err = l.TryAcquire(ctx, name)
		if err == nil && ok {
			return lease
		}
		if err == nil || impl.Classify(err) != impl.ClassTimeout {
			break
		}
	}
	t.Fatalf("TryAcquire(%q) on a free lock: %v; want taken", name, err)
	return impl.Lease{}
}
