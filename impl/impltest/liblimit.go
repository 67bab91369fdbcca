package impltest

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

// RunLimitLibraries runs the conformance tests of the limiter library
// strategies against env with a backend that open connects: a library
// built on the backend's client is held to what it documents (GCRA: burst
// at once, then the rate; the state in one key, with an expiry); the
// others must be refused with impl.ErrNotSupported. The libraries read the
// server's TIME and take no test clock, so the exact schedules of
// RunLimit do not apply: these tests use periods long enough that the
// test's own duration does not matter.
func RunLimitLibraries(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	for _, strategy := range impl.LimitLibraryStrategies() {
		t.Run(strategy, func(t *testing.T) {
			b := openBackend(t, env, open)
			lb := b.(impl.LimitBackend)
			lib, _ := impl.LibraryOf(strategy)
			if lib.Backend != b.Name() {
				_, err := lb.Limiter(strategy, impl.LimitOptions{Keys: env.Keyspace(t)})
				if !errors.Is(err, impl.ErrNotSupported) || !strings.Contains(err.Error(), lib.Backend) {
					t.Fatalf("%s Limiter(%s), a library built on %s: error %v, want ErrNotSupported naming %s", b.Name(), strategy, lib.Backend, err, lib.Backend)
				}
				return
			}
			c := limitCase{env: env, backend: b, strategy: strategy}
			t.Run("TestClock", func(t *testing.T) {
				_, err := lb.Limiter(strategy, impl.LimitOptions{Keys: env.Keyspace(t), Now: time.Now})
				if !errors.Is(err, impl.ErrNotSupported) {
					t.Errorf("Limiter with a test clock: error %v, want ErrNotSupported", err)
				}
			})
			t.Run("BurstThenRate", func(t *testing.T) { testLibLimitBurst(t, c) })
			t.Run("Concurrent", func(t *testing.T) { testLibLimitConcurrent(t, c) })
			t.Run("ServerTimeAndKey", func(t *testing.T) { testLibLimitServerTime(t, c) })
			t.Run("InvalidCost", func(t *testing.T) { testLimitInvalidCost(t, c) })
		})
	}
}

// testLibLimitBurst: an idle key admits the burst at once, then refuses
// with a retry-after of at most one emission interval; a request above
// the burst can never pass.
func testLibLimitBurst(t *testing.T, c limitCase) {
	ctx := testContext(t)
	const burst = 5
	// 10 per hour: the emission interval (6 min) dwarfs the test.
	l, _ := c.limiter(t, impl.LimitOptions{Limit: 10, Period: time.Hour, Burst: burst})
	for i := range burst {
		d, err := l.Allow(ctx, "u", 1)
		if err != nil || !d.Allowed || d.Remaining != int64(burst-1-i) {
			t.Fatalf("request %d of the burst: %s, %v; want allowed with %d remaining", i+1, fmtDecision(d), err, burst-1-i)
		}
	}
	d, err := l.Allow(ctx, "u", 1)
	if err != nil || d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 6*time.Minute {
		t.Errorf("request after the burst: %s, %v; want refused, retry within the 6m emission interval", fmtDecision(d), err)
	}
	d, err = l.Allow(ctx, "other", burst+1)
	if err != nil || d.Allowed || d.RetryAfter != impl.NoRetry {
		t.Errorf("%d units at once with burst %d: %s, %v; want refused for good", burst+1, burst, fmtDecision(d), err)
	}
}

// testLibLimitConcurrent: concurrent requests on one idle key admit
// exactly the burst.
func testLibLimitConcurrent(t *testing.T, c limitCase) {
	ctx := testContext(t)
	l, _ := c.limiter(t, impl.LimitOptions{Limit: limitHot, Period: time.Hour})
	var admitted, refused atomic.Int64
	var mu sync.Mutex
	var firstErr error
	hammer(limitWorkers, limitPerWorker, func() bool {
		d, err := l.Allow(ctx, "hot", 1)
		switch {
		case err != nil:
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		case d.Allowed:
			admitted.Add(1)
		default:
			refused.Add(1)
		}
		return true
	})
	if firstErr != nil {
		t.Fatalf("a call failed: %v", firstErr)
	}
	total := int64(limitWorkers * limitPerWorker)
	if admitted.Load() != limitHot || refused.Load() != total-limitHot {
		t.Errorf("%d concurrent requests, burst %d: %d admitted, %d refused", total, limitHot, admitted.Load(), refused.Load())
	}
}

// testLibLimitServerTime: the decision's time is the server's, and the
// state is one key under the prefix, with an expiry.
func testLibLimitServerTime(t *testing.T, c limitCase) {
	ctx := testContext(t)
	l, ks := c.limiter(t, impl.LimitOptions{Limit: 3, Period: time.Minute})
	before, err := c.env.Admin.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, true, true, false} {
		d, err := l.Allow(ctx, "user", 1)
		if err != nil || d.Allowed != want {
			t.Fatalf("Allow = %s, %v; want allowed %t", fmtDecision(d), err, want)
		}
		after, err := c.env.Admin.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d.At.Before(before) || d.At.After(after) {
			t.Errorf("decision at %s, not between the server's TIME before (%s) and after (%s)", d.At, before, after)
		}
		before = d.At
	}
	key := impl.LimitKey(ks, c.strategy, "user")
	if keys := scanKeys(t, ctx, c.env.Admin, ks); len(keys) != 1 || keys[0] != key {
		t.Errorf("keys under the prefix: %q, want only %q", keys, key)
	}
	if n, err := c.env.Admin.Exists(ctx, "rate:"+key).Result(); err != nil || n != 0 {
		t.Errorf("the library's own rate:-prefixed key exists (%d, %v): it must stay under the run's prefix", n, err)
	}
	ttl, err := c.env.Admin.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute+time.Second {
		t.Errorf("PTTL %s = %s, %v; want an expiry within the period and 1s", key, ttl, err)
	}
}
