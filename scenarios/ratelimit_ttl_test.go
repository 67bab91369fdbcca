package scenarios

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
	"github.com/paybench/paybench/reports/result"
)

// scriptLimitBackend is the backend under test whose Limiter runs a Lua
// source of the test's through the backend's own scripts
// (impl.ScriptBackend) instead of the limiter's script: a deliberately
// broken limiter, to prove the scenario's invariants tell it from the
// correct one.
type scriptLimitBackend struct {
	impl.Backend
	src string
}

// Limiter implements impl.LimitBackend.
func (b scriptLimitBackend) Limiter(strategy string, o impl.LimitOptions) (impl.Limiter, error) {
	sb, ok := b.Backend.(impl.ScriptBackend)
	if !ok {
		return nil, fmt.Errorf("%s runs no scripts", b.Name())
	}
	return &scriptLimiter{script: sb.Script(b.src), strategy: strategy, o: o.WithDefaults()}, nil
}

// scriptLimiter runs a limiter script with the limiters' own arguments and
// reply (impl.LimitScriptArgs, impl.DecodeLimitReply).
type scriptLimiter struct {
	script   impl.Script
	strategy string
	o        impl.LimitOptions
}

// Allow implements impl.Limiter.
func (l *scriptLimiter) Allow(ctx context.Context, key string, n int64) (impl.Decision, error) {
	r, err := l.script.Run(ctx, []string{impl.LimitKey(l.o.Keys, l.strategy, key)}, impl.LimitScriptArgs(l.o, n)...)
	if err != nil {
		return impl.Decision{}, err
	}
	return impl.DecodeLimitReply(r)
}

// limitScriptSources are the limiter scripts by strategy.
var limitScriptSources = map[string]string{
	impl.LimitFixedWindow:   scripts.LimitFixedWindow,
	impl.LimitSlidingLog:    scripts.LimitSlidingLog,
	impl.LimitSlidingWindow: scripts.LimitSlidingWindow,
	impl.LimitGCRA:          scripts.LimitGCRA,
}

// TestRateLimitCatchesBrokenExpiry runs the rate-limit scenario on copies
// of the limiter scripts whose expiry was removed (or stretched) and
// checks that the expiry invariant, and only it, fails — and that the
// unchanged script, run the same way, passes: a scenario that cannot tell
// a limiter whose keys never expire from the correct one is not done.
func TestRateLimitCatchesBrokenExpiry(t *testing.T) {
	const noExpiry, late = "no expiry", "late"
	for _, tc := range []struct {
		backend, strategy string
		old, new          string // "": the script unchanged
		want              string // the violation, "" for none
	}{
		{impl.GoRedis, impl.LimitFixedWindow, "redis.call('PEXPIRE', key, math.ceil((window_end - now) / 1000) + margin)", "", noExpiry},
		{impl.Rueidis, impl.LimitSlidingLog, "redis.call('PEXPIRE', key, math.ceil(period / 1000) + margin)", "", noExpiry},
		{impl.GoRedis, impl.LimitSlidingWindow, "redis.call('PEXPIRE', key, math.ceil((2 * period - elapsed) / 1000) + margin)", "", noExpiry},
		{impl.Rueidis, impl.LimitGCRA, "redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + margin)",
			"redis.call('SET', key, string.format('%d', new_tat))", noExpiry},
		// A clean-up margin of a minute instead of a second: the keys
		// expire, but far past the documented bound.
		{impl.GoRedis, impl.LimitSlidingLog, "tonumber(t[1]) * 1000000 + tonumber(t[2]), 1000", "tonumber(t[1]) * 1000000 + tonumber(t[2]), 60000", late},
		{impl.GoRedis, impl.LimitGCRA, "", "", ""},
		{impl.Rueidis, impl.LimitFixedWindow, "", "", ""},
	} {
		name := tc.backend + "/" + tc.strategy + "/" + tc.want
		if tc.want == "" {
			name = tc.backend + "/" + tc.strategy + "/unchanged"
		}
		t.Run(name, func(t *testing.T) {
			src := limitScriptSources[tc.strategy]
			if tc.old != "" {
				if !strings.Contains(src, tc.old) {
					t.Fatalf("the %s script no longer holds %q: update the test", tc.strategy, tc.old)
				}
				src = strings.Replace(src, tc.old, tc.new, 1)
			}
			env := testEnvC(t, tc.backend, 8)
			env.Backend = scriptLimitBackend{Backend: env.Backend, src: src}
			r := newRateLimit()
			r.Users, r.Periods, r.Period = 2, 2, 100*time.Millisecond
			cell := runJudged(t, r, env, tc.strategy)
			t.Logf("%s: %s", cell.Verdict, cell.Summary)
			var expiry result.Invariant
			for _, inv := range cell.Invariants {
				if inv.Name == "limiter keys expire as documented" {
					expiry = inv
				} else if !inv.Holds {
					t.Errorf("%q broke too: %s", inv.Name, inv.Detail)
				}
			}
			f := cell.Figures
			switch tc.want {
			case "":
				if cell.Verdict != result.Pass || !expiry.Holds || f["limiter_expiries_read"] == 0 {
					t.Fatalf("unchanged script: %s, %+v, %v expiries read", cell.Verdict, expiry, f["limiter_expiries_read"])
				}
			case noExpiry, late:
				if cell.Verdict != result.Fail || expiry.Holds {
					t.Fatalf("verdict %s, expiry invariant %+v: the broken script was not caught", cell.Verdict, expiry)
				}
				figure := map[string]string{noExpiry: "limiter_keys_without_expiry", late: "limiter_keys_expiring_late"}[tc.want]
				if f[figure] == 0 {
					t.Errorf("%s = 0: %s", figure, expiry.Detail)
				}
				if !strings.Contains(cell.Summary, "out of their documented expiry") {
					t.Errorf("the summary does not say what broke: %s", cell.Summary)
				}
			}
		})
	}
}

// TestLimitKeyShape reads the strategy (and window) off limiter key names.
func TestLimitKeyShape(t *testing.T) {
	ks := impl.MustKeyspace("pb:t:rate-limit:goredis:x:")
	for _, tc := range []struct {
		key      string
		strategy string
		window   int64
		ok       bool
	}{
		{impl.LimitKey(ks, impl.LimitNaive, "u0"), impl.LimitNaive, 0, true},
		{impl.LimitWindowKey(ks, "u0", 7123456), impl.LimitFixedWindow, 7123456, true},
		{impl.LimitKey(ks, impl.LimitSlidingLog, "a:b}c"), impl.LimitSlidingLog, 0, true},
		{impl.LimitKey(ks, impl.LimitSlidingWindow, ""), impl.LimitSlidingWindow, 0, true},
		{impl.LimitKey(ks, impl.LimitGCRA, "{u}"), impl.LimitGCRA, 0, true},
		{impl.LimitKey(ks, impl.LimitFixedWindow, "u0"), "", 0, false}, // the prefix, never a key
		{impl.LimitKey(ks, impl.LimitFixedWindow, "u0") + ":x", "", 0, false},
		{ks.Tagged("ratelimit-log", "u0"), "", 0, false},
	} {
		strategy, w, ok := limitKeyShape(tc.key)
		if strategy != tc.strategy || w != tc.window || ok != tc.ok {
			t.Errorf("%s: %q %d %t, want %q %d %t", tc.key, strategy, w, ok, tc.strategy, tc.window, tc.ok)
		}
	}
}

// TestLimitExpiryBounds checks each strategy's documented expiry window
// (µs; period 250 ms).
func TestLimitExpiryBounds(t *testing.T) {
	o := impl.LimitOptions{Limit: 10, Period: 250 * time.Millisecond}
	const s, m, pre = 20_000, 1_000_000, 250_000 // slack, margin and preemption, µs
	for _, tc := range []struct {
		strategy       string
		w, state, now  int64
		wantLo, wantHi int64
	}{
		{impl.LimitNaive, 0, 0, 10_000_000, 10_000_000, 10_250_000 + s + pre},
		{impl.LimitFixedWindow, 40, 0, 10_100_000, 10_250_000 - s, 10_250_000 + m + s + pre},
		{impl.LimitSlidingLog, 0, 10_050_000, 10_100_000, 10_300_000 - s, 10_300_000 + m + s + pre},
		{impl.LimitSlidingWindow, 0, 40, 10_100_000, 10_500_000 - s, 10_500_000 + m + s + pre},
		{impl.LimitGCRA, 0, 10_400_000, 10_100_000, 10_400_000 - s, 10_400_000 + m + s + pre},
	} {
		lo, hi := limitExpiryBounds(tc.strategy, o, tc.w, tc.state, tc.now, s)
		if lo != tc.wantLo || hi != tc.wantHi {
			t.Errorf("%s: [%d, %d], want [%d, %d]", tc.strategy, lo, hi, tc.wantLo, tc.wantHi)
		}
	}
}

// healthyRateLimit is the outcome of a rate-limit cell that held.
func healthyRateLimit(strategy string) rateLimitOutcome {
	return rateLimitOutcome{
		strategy: strategy, opts: impl.LimitOptions{Limit: 10, Period: 250 * time.Millisecond, Burst: 10},
		users: 4, periods: 6, nominal: 60,
		admitted: 240, refused: 5000,
		agg:    rateLimitAggregate{admitted: 240, maxSliding: 10, maxFixed: 10, minVsRule: 1, minNominal: 1, sumNominal: 4, sumVsSliding: 4},
		steady: true, steadyEvery: 50 * time.Millisecond, steadyRequests: 30, steadyAdmitted: 30, steadyLogged: 30,
		expiry: limitExpiryCheck{read: 80},
	}
}

// TestRateLimitSummaryAgrees breaks one figure of a healthy outcome at a
// time and checks that the invariant it feeds fails and that the summary,
// made from the same figures, says so and claims nothing it denies.
func TestRateLimitSummaryAgrees(t *testing.T) {
	for _, tc := range []struct {
		name      string
		strategy  string
		edit      func(o *rateLimitOutcome)
		invariant string
		say       string
		notSay    string
	}{
		{"healthy", impl.LimitSlidingLog, func(*rateLimitOutcome) {}, "", "steady client never locked out", "broken"},
		{"over-admission", impl.LimitSlidingLog, func(o *rateLimitOutcome) { o.agg.violations, o.agg.maxSliding = 3, 12 },
			"no sliding window above the limit", "broken: 3 admissions over it", "at most 12 per sliding"},
		{"lock-outs", impl.LimitFixedWindow, func(o *rateLimitOutcome) { o.lockouts = 2 },
			"steady client never locked out", "locked out 2 times", "never locked out"},
		{"under-admission", impl.LimitGCRA, func(o *rateLimitOutcome) { o.agg.minVsRule = 0.8 },
			"no under-admission", "under-admitted: a user got 80.0%", ""},
		{"failed decisions", impl.LimitGCRA, func(o *rateLimitOutcome) { o.failed = 7 },
			"", "7 decisions failed", ""},
		{"admissions not logged", impl.LimitGCRA, func(o *rateLimitOutcome) { o.agg.admitted = 230 },
			"every admission logged", "230 of 240 admissions logged", ""},
		{"keys without expiry", impl.LimitFixedWindow, func(o *rateLimitOutcome) { o.expiry.noExpiry, o.expiry.first = 4, "limit:{u0}:fw:1: no expiry" },
			"limiter keys expire as documented", "4 never expire", ""},
		{"keys expiring late", impl.LimitGCRA, func(o *rateLimitOutcome) { o.expiry.late = 1 },
			"limiter keys expire as documented", "1 late", ""},
		{"sliding window above 2×limit", impl.LimitSlidingWindow, func(o *rateLimitOutcome) { o.agg.maxSliding = 21 },
			"no sliding window above 2×limit", "above 2×limit", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := healthyRateLimit(tc.strategy)
			tc.edit(&o)
			var broken []string
			if tc.invariant != "" {
				broken = []string{tc.invariant}
			}
			checkSummaryMatches(t, o.invariants(), o.summary(), broken, tc.say, tc.notSay)
		})
	}
}

// checkSummaryAgrees checks that exactly the invariants named broke, and
// that summary says say and not notSay ("" checks nothing).
func checkSummaryMatches(t *testing.T, invs []result.Invariant, summary string, broken []string, say, notSay string) {
	t.Helper()
	for _, inv := range invs {
		if inv.Holds == slices.Contains(broken, inv.Name) {
			t.Errorf("invariant %q holds=%t (want broken: %q): %s", inv.Name, inv.Holds, broken, inv.Detail)
		}
	}
	if say != "" && !strings.Contains(summary, say) {
		t.Errorf("summary does not say %q: %s", say, summary)
	}
	if notSay != "" && strings.Contains(summary, notSay) {
		t.Errorf("summary says %q, which a broken invariant denies: %s", notSay, summary)
	}
}

// TestLimitExpiriesOnServersWithoutPEXPIRETIME reads limiter keys'
// expiries on the shared test server and on one where PEXPIRETIME is
// renamed away (as on Redis before 7.0): both read every key, and both
// find the one without an expiry and the one due too late.
func TestLimitExpiriesOnServersWithoutPEXPIRETIME(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string // a spawned server's; nil: the shared test server
	}{
		{"PEXPIRETIME", nil},
		{"PTTL", []string{"--rename-command", "PEXPIRETIME", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admin := testEnvC(t, impl.GoRedis, 1).Admin
			ks := redistest.Keyspace(t)
			if tc.args != nil {
				if testing.Short() {
					t.Skip("needs redis-server (-short)")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				srv, err := redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindSpawn, ServerArgs: tc.args})
				if err != nil {
					t.Skipf("no spawned redis-server: %v", err)
				}
				t.Cleanup(func() { srv.Close() })
				admin = srv.Admin()
			}
			ctx := t.Context()
			now, err := admin.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			o := impl.LimitOptions{Keys: ks, Limit: 10, Period: 250 * time.Millisecond}
			tat := now.Add(100 * time.Millisecond).UnixMicro()
			keys := []string{
				impl.LimitKey(ks, impl.LimitGCRA, "ok"), impl.LimitKey(ks, impl.LimitGCRA, "never"),
				impl.LimitKey(ks, impl.LimitGCRA, "late"), impl.LimitKey(ks, impl.LimitGCRA, "gone"),
			}
			pipe := admin.Pipeline()
			pipe.Set(ctx, keys[0], tat, 1100*time.Millisecond)
			pipe.Set(ctx, keys[1], tat, 0)
			pipe.Set(ctx, keys[2], tat, time.Minute)
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := readLimitExpiries(ctx, admin, o, keys)
			if err != nil {
				t.Fatal(err)
			}
			if c.read != 3 || c.noExpiry != 1 || c.late != 1 || c.early != 0 {
				t.Errorf("read %d, no expiry %d, late %d, early %d; want 3, 1, 1, 0 (first: %s)", c.read, c.noExpiry, c.late, c.early, c.first)
			}
		})
	}
}
