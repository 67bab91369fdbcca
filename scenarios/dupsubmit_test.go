package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// Errors as the backends report them, for the judge's tests.
var (
	errLost   = fmt.Errorf("goredis dedupe dedupe: submit: %w", io.EOF) // connection: unknown outcome
	errNoPerm = errors.New("NOPERM User u has no permissions to run the 'set' command")
)

// TestDupSubmitJudge judges hand-made requests of 4 copies (window 10 s,
// the run started at 0, read back at 1 s): lost replies are settled by the
// guard key where they can be, and the summary agrees with the
// invariants.
func TestDupSubmitJudge(t *testing.T) {
	const window = 10 * time.Second
	key := func(claimant string, processed ...string) dupSubmitServer {
		return dupSubmitServer{processed: processed, claimant: claimant, expiry: 10_000_000, now: 1_000_000, slack: 20_000}
	}
	for _, tc := range []struct {
		name     string
		strategy string
		rec      dupSubmitRecord
		srv      dupSubmitServer
		broken   []string // the invariants that must fail
		settled  int64
		say      string
		notSay   string
	}{
		{"one through, three refused", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0", "r#0"}},
			key("r#0", "r#0"), nil, 0, "3 repeats refused with the original's id", "lost"},
		{"the claim's reply lost", impl.DedupeSetNX,
			dupSubmitRecord{originals: []string{"r#1", "r#1", "r#1"}, failed: []dupSubmitFailure{{"r#1", errLost}}},
			key("r#1"), nil, 1, "1 replies lost, 1 had claimed their request", "never processed"},
		{"a repeat's reply lost", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0"}, failed: []dupSubmitFailure{{"r#3", errLost}}},
			key("r#0", "r#0"), nil, 1, "1 replies lost, 0 had claimed", ""},
		{"a lost reply after the guard key expired", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0"}, failed: []dupSubmitFailure{{"r#3", errLost}}},
			dupSubmitServer{processed: []string{"r#0"}, expiry: expiryGone, now: 11_000_000},
			nil, 0, "1 failed submissions not settled", "replies lost"},
		{"every copy lost, none applied", impl.DedupeSetNX,
			dupSubmitRecord{failed: []dupSubmitFailure{{"r#0", errLost}, {"r#1", errLost}, {"r#2", errLost}, {"r#3", errLost}}},
			dupSubmitServer{expiry: expiryGone, now: 1_000_000}, nil, 1, "each of the 0 that reached the guard processed once; 4 replies lost, 0 had claimed their request", "never processed"},
		{"a lost reply and the guard key gone within its window", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0"}, failed: []dupSubmitFailure{{"r#3", errLost}}},
			dupSubmitServer{processed: []string{"r#0"}, expiry: expiryGone, now: 1_000_000},
			[]string{"guard key names the processed submission", "guard keys expire after the window"}, 1, "guard keys out of the window's expiry", ""},
		{"a refused command is not settled", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0"}, failed: []dupSubmitFailure{{"r#3", errNoPerm}}},
			key("r#0", "r#0"), nil, 0, "1 failed submissions not settled", "replies lost"},
		{"a cancelled submission settles but is no failure", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0"}, failed: []dupSubmitFailure{{"r#3", context.Canceled}}},
			key("r#0", "r#0"), nil, 0, "1 replies lost, 0 had claimed", ""},
		{"naive failures are not settled", impl.DedupeNaive,
			dupSubmitRecord{accepted: []string{"r#0", "r#1", "r#2"}, failed: []dupSubmitFailure{{"r#3", errLost}}},
			key("r#3", "r#0", "r#1", "r#2"),
			[]string{"each request processed exactly once", "guard key names the processed submission"}, 0, "processed more than once", "each processed once"},
		{"processed twice", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0", "r#1"}, originals: []string{"r#0", "r#0"}},
			key("r#0", "r#0", "r#1"),
			[]string{"each request processed exactly once", "repeats told the original's id", "guard key names the processed submission"}, 0, "1 of 1 requests processed more than once", "each processed once"},
		{"a repeat told another id", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0", "r#2"}},
			key("r#0", "r#0"), []string{"repeats told the original's id"}, 0, "1 of 3 refused repeats were told another id", "repeats refused with the original's id"},
		{"guard key without expiry", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0", "r#0"}},
			dupSubmitServer{processed: []string{"r#0"}, claimant: "r#0", expiry: expiryNever, now: 1_000_000}, []string{"guard keys expire after the window"}, 0, "1 never expire", ""},
		{"guard key past the window", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0", "r#0"}},
			dupSubmitServer{processed: []string{"r#0"}, claimant: "r#0", expiry: 61_000_000, now: 1_000_000}, []string{"guard keys expire after the window"}, 0, "out of the window's expiry", ""},
		{"guard key expired after its window", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0", "r#0"}},
			dupSubmitServer{processed: []string{"r#0"}, expiry: expiryGone, now: 11_000_000}, nil, 0, "each processed once", "guard keys"},
		{"guard key gone within its window", impl.DedupeSetNX,
			dupSubmitRecord{accepted: []string{"r#0"}, originals: []string{"r#0", "r#0", "r#0"}},
			dupSubmitServer{processed: []string{"r#0"}, expiry: expiryGone, now: 1_000_000},
			[]string{"guard key names the processed submission", "guard keys expire after the window"}, 0, "guard keys do not name", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rec.fp = "fp"
			o := judgeDupSubmit(tc.strategy, 4, window, 0, []dupSubmitRecord{tc.rec}, []dupSubmitServer{tc.srv}, impl.Classify)
			checkSummaryMatches(t, o.invariants(), o.summary(), tc.broken, tc.say, tc.notSay)
			if o.settledOps != tc.settled {
				t.Errorf("settled %d operations, want %d", o.settledOps, tc.settled)
			}
		})
	}
}

// noExpiryGuardBackend is the backend under test whose dedupe guard is a
// deliberately broken one: SET NX GET with no expiry.
type noExpiryGuardBackend struct {
	impl.Backend
	rdb redis.UniversalClient
}

// Deduper implements impl.DedupeBackend.
func (b noExpiryGuardBackend) Deduper(_ string, o impl.DedupeOptions) (impl.Deduper, error) {
	return noExpiryGuard{rdb: b.rdb, keys: o.Keys}, nil
}

// noExpiryGuard claims a fingerprint forever.
type noExpiryGuard struct {
	rdb  redis.UniversalClient
	keys impl.Keyspace
}

// Submit implements impl.Deduper.
func (g noExpiryGuard) Submit(ctx context.Context, fp, id string) (impl.Submission, error) {
	prev, err := g.rdb.SetArgs(ctx, impl.DedupeKey(g.keys, fp), id, redis.SetArgs{Mode: "NX", Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return impl.Submission{Accepted: true, OriginalID: id}, nil
	}
	if err != nil {
		return impl.Submission{}, err
	}
	return impl.Submission{OriginalID: prev}, nil
}

// TestDupSubmitCatchesGuardWithoutExpiry runs duplicate-submit on a guard
// whose keys never expire: it dedupes perfectly, and only the expiry
// invariant tells it from the correct one.
func TestDupSubmitCatchesGuardWithoutExpiry(t *testing.T) {
	env := testEnvC(t, impl.GoRedis, 8)
	opt := *env.Admin.(*redis.Client).Options()
	rdb := redis.NewClient(&opt)
	t.Cleanup(func() { _ = rdb.Close() })
	env.Backend = noExpiryGuardBackend{Backend: env.Backend, rdb: rdb}
	d := newDupSubmit()
	d.Requests, d.Copies = 40, 3
	cell := runJudged(t, d, env, impl.DedupeSetNX)
	t.Logf("%s: %s", cell.Verdict, cell.Summary)
	for _, inv := range cell.Invariants {
		if inv.Holds == (inv.Name == "guard keys expire after the window") { // only it breaks
			t.Errorf("invariant %q holds=%t: %s", inv.Name, inv.Holds, inv.Detail)
		}
	}
	if cell.Verdict != result.Fail || cell.Figures["guard_keys_without_expiry"] != 40 {
		t.Fatalf("verdict %s, %v keys without expiry: the broken guard was not caught", cell.Verdict, cell.Figures["guard_keys_without_expiry"])
	}
	if !strings.Contains(cell.Summary, "40 never expire") {
		t.Errorf("the summary does not say what broke: %s", cell.Summary)
	}
}
