package impltest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

// limitEpoch is where the limiter tests' clock starts: a whole hour, so
// that it is aligned to every period that divides an hour and window
// boundaries fall exactly on the schedule's offsets.
var limitEpoch = time.Unix(1_699_999_200, 0)

// limitClock is a test clock for impl.LimitOptions.Now: the scripts take
// their time from it instead of the server's TIME.
type limitClock struct{ us atomic.Int64 }

func newLimitClock() *limitClock {
	c := &limitClock{}
	c.us.Store(limitEpoch.UnixMicro())
	return c
}

func (c *limitClock) now() time.Time      { return time.UnixMicro(c.us.Load()) }
func (c *limitClock) at(d time.Duration)  { c.us.Store(limitEpoch.Add(d).UnixMicro()) }
func (c *limitClock) add(d time.Duration) { c.us.Add(d.Microseconds()) }

// scriptedLimiters are the strategies that run a script with the server's
// (or the test's) clock; naive reads no clock.
var scriptedLimiters = []string{impl.LimitFixedWindow, impl.LimitSlidingLog, impl.LimitSlidingWindow, impl.LimitGCRA}

// limitCase is what each limiter test receives.
type limitCase struct {
	env      Env
	backend  impl.Backend
	strategy string
}

// limiter returns the case's strategy on a fresh keyspace with o (Keys
// filled in).
func (c limitCase) limiter(t *testing.T, o impl.LimitOptions) (impl.Limiter, impl.Keyspace) {
	t.Helper()
	o.Keys = c.env.Keyspace(t)
	l, err := c.backend.(impl.LimitBackend).Limiter(c.strategy, o)
	if err != nil {
		t.Fatalf("Limiter(%q, %+v): %v", c.strategy, o, err)
	}
	return l, o.Keys
}

type limitTest struct {
	name string
	only []string // nil: every strategy
	run  func(t *testing.T, c limitCase)
}

var limitTests = []limitTest{
	{name: "Schedule", only: scriptedLimiters, run: testLimitSchedule},
	{name: "GCRABurst", only: []string{impl.LimitGCRA}, run: testGCRABurst},
	{name: "MultiUnit", run: testLimitMultiUnit},
	{name: "RetryAfterExact", only: scriptedLimiters, run: testLimitRetryAfter},
	{name: "ConcurrentExact", only: scriptedLimiters, run: testLimitConcurrent},
	{name: "ServerTime", only: scriptedLimiters, run: testLimitServerTime},
	{name: "ScriptFlush", only: scriptedLimiters, run: testLimitScriptFlush},
	{name: "OddKeys", run: testLimitOddKeys},
	{name: "InvalidCost", run: testLimitInvalidCost},
	{name: "NaiveRestartsWindow", only: []string{impl.LimitNaive}, run: testNaiveRestartsWindow},
}

// RunLimit runs the limiter conformance suite: for every strategy of
// impl.LimitStrategies, every test that applies to it, against env, with a
// backend that open connects.
func RunLimit(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	t.Run("Strategies", func(t *testing.T) { testLimitStrategies(t, env, open) })
	for _, strategy := range impl.LimitStrategies() {
		t.Run(strategy, func(t *testing.T) {
			c := limitCase{env: env, backend: openBackend(t, env, open), strategy: strategy}
			for _, tt := range limitTests {
				if tt.only != nil && !slices.Contains(tt.only, strategy) {
					continue
				}
				t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
			}
		})
	}
}

func testLimitStrategies(t *testing.T, env Env, open impl.Opener) {
	b := openBackend(t, env, open)
	lb, ok := b.(impl.LimitBackend)
	if !ok {
		t.Fatalf("%T does not implement impl.LimitBackend", b)
	}
	ks := env.Keyspace(t)
	for _, name := range impl.LimitStrategies() {
		if _, err := lb.Limiter(name, impl.LimitOptions{Keys: ks}); err != nil {
			t.Errorf("Limiter(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "GCRA", "gcra ", "token-bucket"} {
		if _, err := lb.Limiter(name, impl.LimitOptions{Keys: ks}); !errors.Is(err, impl.ErrUnknownStrategy) {
			t.Errorf("Limiter(%q) error = %v, want ErrUnknownStrategy", name, err)
		}
	}
	for _, tc := range []struct {
		name string
		o    impl.LimitOptions
	}{
		{"no keys", impl.LimitOptions{}},
		{"negative limit", impl.LimitOptions{Keys: ks, Limit: -1}},
		{"limit too large", impl.LimitOptions{Keys: ks, Limit: impl.MaxLimit + 1}},
		{"negative burst", impl.LimitOptions{Keys: ks, Burst: -1}},
		{"period too short", impl.LimitOptions{Keys: ks, Period: time.Microsecond}},
		{"period too long", impl.LimitOptions{Keys: ks, Period: impl.MaxPeriod + time.Second}},
		{"sub-microsecond period", impl.LimitOptions{Keys: ks, Period: time.Second + time.Nanosecond}},
	} {
		for _, name := range impl.LimitStrategies() {
			if _, err := lb.Limiter(name, tc.o); !errors.Is(err, impl.ErrInvalidLimit) {
				t.Errorf("%s: Limiter(%q) error = %v, want ErrInvalidLimit", tc.name, name, err)
			}
		}
	}
}

// limitStep is a burst of requests of one unit each at one instant of the
// test clock, and what the limiter must answer.
type limitStep struct {
	at       time.Duration // since limitEpoch
	requests int
	admitted int
	// the last request's decision
	lastAllowed   bool
	lastRemaining int64
	lastRetry     time.Duration
}

// runSchedule plays steps against l on key and checks every answer; it
// returns the total admitted.
func runSchedule(t *testing.T, ctx context.Context, l impl.Limiter, clock *limitClock, key string, steps []limitStep) int {
	t.Helper()
	total := 0
	for i, s := range steps {
		clock.at(s.at)
		admitted := 0
		var last impl.Decision
		for range s.requests {
			d, err := l.Allow(ctx, key, 1)
			if err != nil {
				t.Fatalf("step %d (t=%s): Allow: %v", i, s.at, err)
			}
			if d.Allowed {
				admitted++
			}
			if !d.At.Equal(clock.now()) {
				t.Errorf("step %d (t=%s): decision at %s, want the test clock's %s", i, s.at, d.At, clock.now())
			}
			last = d
		}
		total += admitted
		want := impl.Decision{Allowed: s.lastAllowed, Remaining: s.lastRemaining, RetryAfter: s.lastRetry, At: clock.now()}
		if admitted != s.admitted || !sameDecision(last, want) {
			t.Errorf("step %d: %d requests at t=%s: %d admitted, last %s; want %d admitted, last %s",
				i, s.requests, s.at, admitted, fmtDecision(last), s.admitted, fmtDecision(want))
		}
	}
	return total
}

func sameDecision(a, b impl.Decision) bool {
	return a.Allowed == b.Allowed && a.Remaining == b.Remaining && a.RetryAfter == b.RetryAfter && a.At.Equal(b.At)
}

func fmtDecision(d impl.Decision) string {
	return fmt.Sprintf("{allowed=%v remaining=%d retry=%s}", d.Allowed, d.Remaining, d.RetryAfter)
}

// boundaryOffsets is the fixed schedule every scripted limiter is held to:
// limit 4 per second; one request, then a burst at the end of window 0,
// one at the start of window 1, one in its middle, one early in window 2.
// Each strategy's expected answers follow.
var boundarySchedules = map[string]struct {
	burst int64
	total int
	steps []limitStep
}{
	// Aligned windows: 3 at 0.9 s and 4 more at 1.0 s — 7 within 100 ms,
	// the fixed window's boundary burst.
	impl.LimitFixedWindow: {total: 12, steps: []limitStep{
		{0, 1, 1, true, 3, 0},
		{900 * time.Millisecond, 4, 3, false, 0, 100 * time.Millisecond},
		{1000 * time.Millisecond, 4, 4, true, 0, 0},
		{1500 * time.Millisecond, 4, 0, false, 0, 500 * time.Millisecond},
		{2050 * time.Millisecond, 4, 4, true, 0, 0},
	}},
	// Window (now-1s, now]: at 1.0 s only the request from t=0 has left.
	impl.LimitSlidingLog: {total: 9, steps: []limitStep{
		{0, 1, 1, true, 3, 0},
		{900 * time.Millisecond, 4, 3, false, 0, 100 * time.Millisecond},
		{1000 * time.Millisecond, 4, 1, false, 0, 900 * time.Millisecond},
		{1500 * time.Millisecond, 4, 0, false, 0, 400 * time.Millisecond},
		{2050 * time.Millisecond, 4, 4, true, 0, 0},
	}},
	// prev*(1-elapsed) + cur: at 1.0 s the 4 of window 0 weigh fully; at
	// 1.5 s half (2); at 2.05 s window 1's 2 weigh 0.95 each.
	impl.LimitSlidingWindow: {total: 8, steps: []limitStep{
		{0, 1, 1, true, 3, 0},
		{900 * time.Millisecond, 4, 3, false, 0, 350 * time.Millisecond},
		{1000 * time.Millisecond, 4, 0, false, 0, 250 * time.Millisecond},
		{1500 * time.Millisecond, 4, 2, false, 0, 250 * time.Millisecond},
		{2050 * time.Millisecond, 4, 2, false, 0, 450 * time.Millisecond},
	}},
	// T = 250 ms, burst 4: the idle key at 0.9 s takes a full burst of 4
	// (its TAT was 0.25 s), then one per 250 ms.
	impl.LimitGCRA: {burst: 4, total: 9, steps: []limitStep{
		{0, 1, 1, true, 3, 0},
		{900 * time.Millisecond, 4, 4, true, 0, 0},
		{1000 * time.Millisecond, 4, 0, false, 0, 150 * time.Millisecond},
		{1500 * time.Millisecond, 4, 2, false, 0, 150 * time.Millisecond},
		{2050 * time.Millisecond, 4, 2, false, 0, 100 * time.Millisecond},
	}},
	// gcra without burst (burst 1): strictly one per 250 ms.
	impl.LimitGCRA + "/burst=1": {burst: 1, total: 4, steps: []limitStep{
		{0, 1, 1, true, 0, 0},
		{900 * time.Millisecond, 4, 1, false, 0, 250 * time.Millisecond},
		{1000 * time.Millisecond, 4, 0, false, 0, 150 * time.Millisecond},
		{1500 * time.Millisecond, 4, 1, false, 0, 250 * time.Millisecond},
		{2050 * time.Millisecond, 4, 1, false, 0, 250 * time.Millisecond},
	}},
}

func testLimitSchedule(t *testing.T, c limitCase) {
	for name, sched := range boundarySchedules {
		if name != c.strategy && !strings.HasPrefix(name, c.strategy+"/") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			clock := newLimitClock()
			l, _ := c.limiter(t, impl.LimitOptions{Limit: 4, Period: time.Second, Burst: sched.burst, Now: clock.now})
			if got := runSchedule(t, ctx, l, clock, "user", sched.steps); got != sched.total {
				t.Errorf("admitted %d in all, want %d", got, sched.total)
			}
		})
	}
}

// testGCRABurst: an idle key takes the whole burst at once, then one unit
// per emission interval, and gets the burst back after idling.
func testGCRABurst(t *testing.T, c limitCase) {
	ctx := testContext(t)
	clock := newLimitClock()
	l, _ := c.limiter(t, impl.LimitOptions{Limit: 4, Period: time.Second, Burst: 3, Now: clock.now})
	steps := []limitStep{
		{0, 4, 3, false, 0, 250 * time.Millisecond},
		{250 * time.Millisecond, 2, 1, false, 0, 250 * time.Millisecond},
		{499 * time.Millisecond, 1, 0, false, 0, time.Millisecond},
		{500 * time.Millisecond, 1, 1, true, 0, 0},
		{10 * time.Second, 4, 3, false, 0, 250 * time.Millisecond},
	}
	if got := runSchedule(t, ctx, l, clock, "user", steps); got != 8 {
		t.Errorf("admitted %d in all, want 8", got)
	}
}

// testLimitMultiUnit: a request of n units counts n, one of more than the
// limit is refused for good.
func testLimitMultiUnit(t *testing.T, c limitCase) {
	ctx := testContext(t)
	clock := newLimitClock()
	l, _ := c.limiter(t, impl.LimitOptions{Limit: 4, Period: time.Second, Burst: 4, Now: clock.now})
	for i, tc := range []struct {
		n       int64
		allowed bool
		rem     int64
	}{
		{3, true, 1},
		{2, false, 1},
		{1, true, 0},
		{5, false, 0},
	} {
		d, err := l.Allow(ctx, "user", tc.n)
		if err != nil {
			t.Fatalf("request %d: Allow(n=%d): %v", i, tc.n, err)
		}
		if d.Allowed != tc.allowed || d.Remaining != tc.rem {
			t.Errorf("request %d: Allow(n=%d) = %s, want allowed=%v remaining=%d", i, tc.n, fmtDecision(d), tc.allowed, tc.rem)
		}
		if tc.n > 4 && d.RetryAfter != impl.NoRetry {
			t.Errorf("request %d: Allow(n=%d) retry %s, want NoRetry: it can never fit", i, tc.n, d.RetryAfter)
		}
	}
}

// testLimitRetryAfter: a refused request is admitted exactly RetryAfter
// later, and still refused one microsecond earlier.
func testLimitRetryAfter(t *testing.T, c limitCase) {
	for _, tc := range []struct {
		name  string
		start time.Duration // where the key is filled
		first int64         // units admitted at start before the refused one
	}{
		{"window start", 0, 5},
		{"mid window", 333_333 * time.Microsecond, 5},
		{"late", 987_654 * time.Microsecond, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			clock := newLimitClock()
			l, _ := c.limiter(t, impl.LimitOptions{Limit: 5, Period: time.Second, Burst: 5, Now: clock.now})
			clock.at(tc.start)
			if _, err := l.Allow(ctx, "user", tc.first); err != nil {
				t.Fatal(err)
			}
			for round := range 4 {
				d, err := l.Allow(ctx, "user", 1)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed {
					continue // the limiter had room; go on filling it
				}
				if d.RetryAfter <= 0 {
					t.Fatalf("round %d: refused with RetryAfter %s, want > 0", round, d.RetryAfter)
				}
				at := clock.now()
				clock.us.Store(at.Add(d.RetryAfter - time.Microsecond).UnixMicro())
				if early, err := l.Allow(ctx, "user", 1); err != nil || early.Allowed {
					t.Fatalf("round %d: at RetryAfter-1µs (%s after refusal): %s, %v; want refused", round, d.RetryAfter-time.Microsecond, fmtDecision(early), err)
				}
				clock.us.Store(at.Add(d.RetryAfter).UnixMicro())
				if ok, err := l.Allow(ctx, "user", 1); err != nil || !ok.Allowed {
					t.Fatalf("round %d: at RetryAfter (%s after refusal): %s, %v; want admitted", round, d.RetryAfter, fmtDecision(ok), err)
				}
			}
		})
	}
}

// Sizes of the concurrent limiter test.
const (
	limitWorkers   = 8
	limitPerWorker = 25
	limitHot       = 37
)

// testLimitConcurrent: many clients at one instant get exactly the limit
// (the burst for gcra), never one more.
func testLimitConcurrent(t *testing.T, c limitCase) {
	ctx := testContext(t)
	clock := newLimitClock()
	clock.at(123 * time.Millisecond)
	l, _ := c.limiter(t, impl.LimitOptions{Limit: limitHot, Period: time.Second, Now: clock.now})
	var admitted, refused, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	hammer(limitWorkers, limitPerWorker, func() bool {
		d, err := l.Allow(ctx, "hot", 1)
		switch {
		case err != nil:
			failed.Add(1)
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
	if failed.Load() != 0 {
		t.Fatalf("%d calls failed, first: %v", failed.Load(), firstErr)
	}
	total := int64(limitWorkers * limitPerWorker)
	if admitted.Load() != limitHot || refused.Load() != total-limitHot {
		t.Errorf("%d concurrent requests with limit %d: %d admitted, %d refused; want %d and %d",
			total, limitHot, admitted.Load(), refused.Load(), limitHot, total-limitHot)
	}
}

// testLimitServerTime: without a test clock the scripts use the server's
// TIME, and the state lands in the documented key with an expiry.
func testLimitServerTime(t *testing.T, c limitCase) {
	ctx := testContext(t)
	period := time.Minute
	l, ks := c.limiter(t, impl.LimitOptions{Limit: 3, Period: period})
	before, err := c.env.Admin.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(ctx, "user", 1)
	if err != nil {
		t.Fatal(err)
	}
	after, err := c.env.Admin.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || d.Remaining != 2 {
		t.Errorf("first Allow = %s, want allowed with 2 remaining", fmtDecision(d))
	}
	if d.At.Before(before) || d.At.After(after) {
		t.Errorf("decision at %s, not between the server's TIME before (%s) and after (%s)", d.At, before, after)
	}
	now := d.At.UnixMicro()
	key := impl.LimitKey(ks, c.strategy, "user")
	switch c.strategy {
	case impl.LimitFixedWindow:
		key = impl.LimitWindowKey(ks, "user", now/period.Microseconds())
		wantString(t, ctx, c, key, "1")
	case impl.LimitSlidingLog:
		score, err := c.env.Admin.ZScore(ctx, key, fmt.Sprintf("%d-1", now)).Result()
		if err != nil || int64(score) != now {
			t.Errorf("ZSCORE %s %d-1 = %v, %v; want %d", key, now, score, err, now)
		}
	case impl.LimitSlidingWindow:
		h, err := c.env.Admin.HGetAll(ctx, key).Result()
		want := map[string]string{"w": strconv.FormatInt(now/period.Microseconds(), 10), "cur": "1", "prev": "0"}
		if err != nil || fmt.Sprint(h) != fmt.Sprint(want) {
			t.Errorf("HGETALL %s = %v, %v; want %v", key, h, err, want)
		}
	case impl.LimitGCRA:
		wantString(t, ctx, c, key, strconv.FormatInt(now+(period/3).Microseconds(), 10))
	}
	ttl, err := c.env.Admin.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > 2*period+time.Second {
		t.Errorf("PTTL %s = %s, %v; want an expiry within two periods and the margin", key, ttl, err)
	}
	if keys := scanKeys(t, ctx, c.env.Admin, ks); len(keys) != 1 || keys[0] != key {
		t.Errorf("keys under the prefix: %q, want only %q", keys, key)
	}
}

func wantString(t *testing.T, ctx context.Context, c limitCase, key, want string) {
	t.Helper()
	if got, err := c.env.Admin.Get(ctx, key).Result(); err != nil || got != want {
		t.Errorf("GET %s = %q, %v; want %q", key, got, err, want)
	}
}

// testLimitScriptFlush: the scripts survive SCRIPT FLUSH (EVAL fallback).
func testLimitScriptFlush(t *testing.T, c limitCase) {
	ctx := testContext(t)
	clock := newLimitClock()
	l, _ := c.limiter(t, impl.LimitOptions{Limit: 2, Period: time.Second, Now: clock.now})
	for i, want := range []bool{true, true, false} {
		if i == 1 {
			if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		d, err := l.Allow(ctx, "user", 1)
		if err != nil || d.Allowed != want {
			t.Fatalf("request %d: %s, %v; want allowed=%v", i, fmtDecision(d), err, want)
		}
	}
}

// testLimitOddKeys: any key string is its own limit, under the prefix.
func testLimitOddKeys(t *testing.T, c limitCase) {
	ctx := testContext(t)
	clock := newLimitClock()
	l, ks := c.limiter(t, impl.LimitOptions{Limit: 1, Period: time.Second, Now: clock.now})
	for _, key := range oddItems {
		if d, err := l.Allow(ctx, key, 1); err != nil || !d.Allowed {
			t.Errorf("first Allow(%q) = %s, %v; want admitted", key, fmtDecision(d), err)
		}
	}
	for _, key := range oddItems {
		if d, err := l.Allow(ctx, key, 1); err != nil || d.Allowed {
			t.Errorf("second Allow(%q) = %s, %v; want refused", key, fmtDecision(d), err)
		}
	}
	for _, k := range scanKeys(t, ctx, c.env.Admin, ks) {
		if !strings.HasPrefix(k, ks.Prefix()+"limit:{") {
			t.Errorf("key %q is not under %slimit:{", k, ks.Prefix())
		}
	}
}

func testLimitInvalidCost(t *testing.T, c limitCase) {
	ctx := testContext(t)
	l, ks := c.limiter(t, impl.LimitOptions{})
	for _, n := range []int64{0, -1, impl.MaxLimit + 1} {
		if _, err := l.Allow(ctx, "user", n); !errors.Is(err, impl.ErrInvalidQuantity) {
			t.Errorf("Allow(n=%d) error = %v, want ErrInvalidQuantity", n, err)
		}
	}
	if keys := scanKeys(t, ctx, c.env.Admin, ks); len(keys) != 0 {
		t.Errorf("invalid requests wrote keys %q", keys)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Allow(canceled, "user", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Allow with a canceled context: error %v does not wrap context.Canceled", err)
	}
}

// testNaiveRestartsWindow pins the seed's behaviour down without sleeping:
// the admin client stands in for the passing time by shortening the key's
// expiry, or deleting it (the window ended).
func testNaiveRestartsWindow(t *testing.T, c limitCase) {
	ctx := testContext(t)
	period := 10 * time.Second
	l, ks := c.limiter(t, impl.LimitOptions{Limit: 3, Period: period})
	key := impl.LimitKey(ks, impl.LimitNaive, "user")
	allow := func(step string, want bool, rem int64) {
		t.Helper()
		d, err := l.Allow(ctx, "user", 1)
		if err != nil || d.Allowed != want || d.Remaining != rem {
			t.Fatalf("%s: %s, %v; want allowed=%v remaining=%d", step, fmtDecision(d), err, want, rem)
		}
		if !want && d.RetryAfter != period {
			t.Errorf("%s: retry %s, want the period %s (naive reads no expiry)", step, d.RetryAfter, period)
		}
	}
	pttl := func() time.Duration {
		t.Helper()
		d, err := c.env.Admin.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	allow("first", true, 2)
	// 8 s of the 10 s window pass.
	if err := c.env.Admin.PExpire(ctx, key, 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	allow("second, 8 s later", true, 1)
	if got := pttl(); got <= 2*time.Second {
		t.Errorf("after the second admission the key expires in %s: want the window restarted (close to %s)", got, period)
	}
	allow("third", true, 0)
	allow("fourth", false, 0)
	if err := c.env.Admin.PExpire(ctx, key, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	allow("fifth, refused", false, 0)
	if got := pttl(); got > time.Second {
		t.Errorf("a refusal moved the expiry to %s", got)
	}
	// The window ends.
	if err := c.env.Admin.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	allow("after the window", true, 2)
	wantString(t, ctx, c, key, "1")
}
