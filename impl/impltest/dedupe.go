package impltest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

// dedupeCase is what each guard test receives.
type dedupeCase struct {
	env      Env
	backend  impl.Backend
	strategy string
}

// guard returns the case's strategy on a fresh keyspace.
func (c dedupeCase) guard(t *testing.T, window time.Duration) (impl.Deduper, impl.Keyspace) {
	t.Helper()
	ks := c.env.Keyspace(t)
	d, err := c.backend.(impl.DedupeBackend).Deduper(c.strategy, impl.DedupeOptions{Keys: ks, Window: window})
	if err != nil {
		t.Fatalf("Deduper(%q): %v", c.strategy, err)
	}
	return d, ks
}

type dedupeTest struct {
	name string
	only []string
	run  func(t *testing.T, c dedupeCase)
}

var dedupeTests = []dedupeTest{
	{name: "Repeats", run: testDedupeRepeats},
	{name: "WindowEnds", run: testDedupeWindowEnds},
	{name: "Concurrent", run: testDedupeConcurrent},
	{name: "OddFingerprints", run: testDedupeOddFingerprints},
	{name: "InvalidID", run: testDedupeInvalidID},
}

// RunDedupe runs the duplicate-submission guard's conformance suite: for
// every strategy of impl.DedupeStrategies, every test, against env.
func RunDedupe(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	t.Run("Strategies", func(t *testing.T) { testDedupeStrategies(t, env, open) })
	for _, strategy := range impl.DedupeStrategies() {
		t.Run(strategy, func(t *testing.T) {
			c := dedupeCase{env: env, backend: openBackend(t, env, open), strategy: strategy}
			for _, tt := range dedupeTests {
				if tt.only != nil && !slices.Contains(tt.only, strategy) {
					continue
				}
				t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
			}
		})
	}
}

func testDedupeStrategies(t *testing.T, env Env, open impl.Opener) {
	b := openBackend(t, env, open)
	db, ok := b.(impl.DedupeBackend)
	if !ok {
		t.Fatalf("%T does not implement impl.DedupeBackend", b)
	}
	ks := env.Keyspace(t)
	for _, name := range impl.DedupeStrategies() {
		if _, err := db.Deduper(name, impl.DedupeOptions{Keys: ks}); err != nil {
			t.Errorf("Deduper(%q): %v", name, err)
		}
		if _, err := db.Deduper(name, impl.DedupeOptions{}); err == nil {
			t.Errorf("Deduper(%q) without Keys: no error", name)
		}
		if _, err := db.Deduper(name, impl.DedupeOptions{Keys: ks, Window: 1500 * time.Microsecond}); err == nil {
			t.Errorf("Deduper(%q) with a window of 1.5 ms: no error", name)
		}
	}
	for _, name := range []string{"", "DEDUPE", "setnx"} {
		if _, err := db.Deduper(name, impl.DedupeOptions{Keys: ks}); !errors.Is(err, impl.ErrUnknownStrategy) {
			t.Errorf("Deduper(%q) error = %v, want ErrUnknownStrategy", name, err)
		}
	}
}

func submit(t *testing.T, d impl.Deduper, fp, id string) impl.Submission {
	t.Helper()
	s, err := d.Submit(testContext(t), fp, id)
	if err != nil {
		t.Fatalf("Submit(%q, %q): %v", fp, id, err)
	}
	return s
}

// testDedupeRepeats: dedupe passes the first and refuses repeats with the
// original's id; naive passes every one and overwrites the marker.
func testDedupeRepeats(t *testing.T, c dedupeCase) {
	ctx := testContext(t)
	window := time.Minute
	d, ks := c.guard(t, window)
	fp := impl.Fingerprint("user-1", "order-7", "100.00")
	other := impl.Fingerprint("user-1", "order-8", "100.00")
	first := submit(t, d, fp, "sub-1")
	if first != (impl.Submission{Accepted: true, OriginalID: "sub-1"}) {
		t.Errorf("first submission = %+v, want accepted as sub-1", first)
	}
	want := impl.Submission{OriginalID: "sub-1"}
	if c.strategy == impl.DedupeNaive {
		want = impl.Submission{Accepted: true, OriginalID: "sub-2"}
	}
	if got := submit(t, d, fp, "sub-2"); got != want {
		t.Errorf("repeat = %+v, want %+v", got, want)
	}
	if got := submit(t, d, other, "sub-3"); !got.Accepted {
		t.Errorf("another request = %+v, want accepted", got)
	}
	key := impl.DedupeKey(ks, fp)
	stored, err := c.env.Admin.Get(ctx, key).Result()
	wantStored := "sub-1"
	if c.strategy == impl.DedupeNaive {
		wantStored = "sub-2" // the seed's marker is overwritten by every repeat
	}
	if err != nil || stored != wantStored {
		t.Errorf("GET %s = %q, %v; want %q", key, stored, err, wantStored)
	}
	if ttl, err := c.env.Admin.PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > window {
		t.Errorf("PTTL %s = %s, %v; want within the window %s", key, ttl, err, window)
	}
}

// testDedupeWindowEnds: once the fingerprint's window is over (the admin
// client deletes the key instead of sleeping), a new submission passes.
func testDedupeWindowEnds(t *testing.T, c dedupeCase) {
	ctx := testContext(t)
	d, ks := c.guard(t, time.Minute)
	fp := impl.Fingerprint("user-1", "order-7")
	submit(t, d, fp, "a")
	if err := c.env.Admin.Del(ctx, impl.DedupeKey(ks, fp)).Err(); err != nil {
		t.Fatal(err)
	}
	if got := submit(t, d, fp, "b"); got != (impl.Submission{Accepted: true, OriginalID: "b"}) {
		t.Errorf("after the window = %+v, want accepted as b", got)
	}
}

// Sizes of the concurrent guard test: requests × copies each.
const (
	dedupeRequests = 20
	dedupeCopies   = 8
)

// testDedupeConcurrent: copies of one request submitted at once: dedupe
// accepts exactly one and tells every other copy its id; naive accepts all.
func testDedupeConcurrent(t *testing.T, c dedupeCase) {
	ctx := testContext(t)
	d, ks := c.guard(t, time.Minute)
	for r := range dedupeRequests {
		fp := impl.Fingerprint("req", fmt.Sprint(r))
		subs := make([]impl.Submission, dedupeCopies)
		errs := make([]error, dedupeCopies)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range dedupeCopies {
			wg.Go(func() {
				<-start
				subs[i], errs[i] = d.Submit(ctx, fp, fmt.Sprintf("r%d-copy%d", r, i))
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("request %d: %v", r, err)
		}
		var accepted []string
		for _, s := range subs {
			if s.Accepted {
				accepted = append(accepted, s.OriginalID)
			}
		}
		if c.strategy == impl.DedupeNaive {
			if len(accepted) != dedupeCopies {
				t.Errorf("request %d: naive accepted %d of %d copies, want all", r, len(accepted), dedupeCopies)
			}
			continue
		}
		if len(accepted) != 1 {
			t.Fatalf("request %d: %d of %d copies accepted (%q), want exactly 1", r, len(accepted), dedupeCopies, accepted)
		}
		for i, s := range subs {
			if s.OriginalID != accepted[0] {
				t.Errorf("request %d copy %d: told original %q, want %q", r, i, s.OriginalID, accepted[0])
			}
		}
		stored, err := c.env.Admin.Get(ctx, impl.DedupeKey(ks, fp)).Result()
		if err != nil || stored != accepted[0] {
			t.Errorf("request %d: server holds %q, %v; want the accepted %q", r, stored, err, accepted[0])
		}
	}
}

func testDedupeOddFingerprints(t *testing.T, c dedupeCase) {
	ctx := testContext(t)
	d, ks := c.guard(t, time.Minute)
	for _, fp := range oddItems {
		if got := submit(t, d, fp, "first"); !got.Accepted {
			t.Errorf("first Submit(%q) = %+v, want accepted", fp, got)
		}
	}
	for _, fp := range oddItems {
		got := submit(t, d, fp, "second")
		if c.strategy == impl.DedupeSetNX && got != (impl.Submission{OriginalID: "first"}) {
			t.Errorf("second Submit(%q) = %+v, want refused with original first", fp, got)
		}
	}
	keys := scanKeys(t, ctx, c.env.Admin, ks)
	if len(keys) != len(oddItems) {
		t.Errorf("%d keys for %d fingerprints: %q", len(keys), len(oddItems), keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, ks.Prefix()+"dedupe:{") {
			t.Errorf("key %q is not under %sdedupe:{", k, ks.Prefix())
		}
	}
}

func testDedupeInvalidID(t *testing.T, c dedupeCase) {
	ctx := testContext(t)
	d, ks := c.guard(t, 0)
	for _, id := range []string{"", strings.Repeat("x", impl.MaxSubmissionID+1)} {
		if _, err := d.Submit(ctx, "fp", id); !errors.Is(err, impl.ErrInvalidID) {
			t.Errorf("Submit(id of %d bytes) error = %v, want ErrInvalidID", len(id), err)
		}
	}
	if keys := scanKeys(t, ctx, c.env.Admin, ks); len(keys) != 0 {
		t.Errorf("invalid submissions wrote keys %q", keys)
	}
}
