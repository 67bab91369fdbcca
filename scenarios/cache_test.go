package scenarios

import (
	"context"
	"errors"
	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl/origin"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// cacheWant is the verdict each cache strategy must get; client-side on
// go-redis is UNSUPPORTED.
func cacheWant(backend, strategy string, expect result.Expectation) result.Verdict {
	switch {
	case strategy == impl.CacheClientSide && backend == impl.GoRedis:
		return result.Unsupported
	case expect == result.Break:
		return result.Reproduced
	}
	return result.Pass
}

func TestCacheStampedeVerdicts(t *testing.T) {
	s := newCacheStampede()
	for _, backend := range impl.Backends() {
		for _, st := range s.Strategies() {
			t.Run(backend+"/"+st.Name, func(t *testing.T) {
				sc := newCacheStampede()
				sc.TTL, sc.LoadLatency = 200*time.Millisecond, 10*time.Millisecond
				env := testEnv(t, backend)
				env.Common.Duration = time.Second
				want := cacheWant(backend, st.Name, st.Expect)
				cell := runCacheCell(t, sc, env, st.Name)
				t.Logf("%s: %s", cell.Verdict, cell.Summary)
				if cell.Verdict != want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, want, cell.Summary, cell.Invariants)
				}
				if want == result.Unsupported {
					return
				}
				f := cell.Figures
				if f["expiries"] < 2 || f["origin_loads"] < f["expiries"] || f["reads"] != float64(cell.Ops) {
					t.Fatalf("figures: %v (ops %d)", f, cell.Ops)
				}
				if _, ok := cell.Steps[impl.FromOrigin.String()]; !ok {
					t.Fatalf("no miss latency: steps %v", cell.Steps)
				}
				if st.Name == impl.CacheClientSide {
					if _, ok := cell.Steps[impl.FromLocal.String()]; !ok || f["local_hit_p50_us"] <= 0 {
						t.Fatalf("client-side cell without local hits: steps %v, figures %v", cell.Steps, f)
					}
				}
			})
		}
	}
}

// runCacheCell runs one cell as the command line does: an error wrapping
// impl.ErrNotSupported is UNSUPPORTED, any other fails the test.
func runCacheCell(t *testing.T, s Scenario, env *Env, strategy string) result.Cell {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	st, ok := FindStrategy(s, strategy)
	if !ok {
		t.Fatalf("no strategy %q", strategy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cell, err := s.Run(ctx, env, strategy)
	cell.Expect = st.Expect
	if errors.Is(err, impl.ErrNotSupported) {
		cell.Verdict = result.Unsupported
		return cell
	}
	if err != nil {
		t.Fatalf("%s: %v", strategy, err)
	}
	cell.Judge()
	return cell
}

func TestCacheStalenessVerdicts(t *testing.T) {
	s := newCacheStaleness()
	for _, backend := range impl.Backends() {
		for _, st := range s.Strategies() {
			t.Run(backend+"/"+st.Name, func(t *testing.T) {
				sc := newCacheStaleness()
				sc.TTL = 300 * time.Millisecond
				env := testEnv(t, backend)
				env.Common.Duration = time.Second
				want := cacheWant(backend, st.Name, st.Expect)
				cell := runCacheCell(t, sc, env, st.Name)
				t.Logf("%s: %s", cell.Verdict, cell.Summary)
				if cell.Verdict != want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, want, cell.Summary, cell.Invariants)
				}
				if want == result.Unsupported {
					return
				}
				f := cell.Figures
				if f["writes"] < 4 || f["samples"] < 10 || f["reads"] != float64(cell.Ops) {
					t.Fatalf("figures: %v (ops %d)", f, cell.Ops)
				}
			})
		}
	}
}

func TestCacheScenariosValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Scenario
		edit func(s Scenario)
	}{
		{"stampede: no instances", newCacheStampede(), func(s Scenario) { s.(*CacheStampede).Instances = 0 }},
		{"stampede: tiny TTL", newCacheStampede(), func(s Scenario) { s.(*CacheStampede).TTL = time.Millisecond }},
		{"stampede: negative latency", newCacheStampede(), func(s Scenario) { s.(*CacheStampede).LoadLatency = -1 }},
		{"stampede: window over half the TTL", newCacheStampede(), func(s Scenario) { s.(*CacheStampede).Window = time.Second }},
		{"stampede: zero beta", newCacheStampede(), func(s Scenario) { s.(*CacheStampede).Beta = 0 }},
		{"staleness: no records", newCacheStaleness(), func(s Scenario) { s.(*CacheStaleness).Records = 0 }},
		{"staleness: more writers than records", newCacheStaleness(), func(s Scenario) { s.(*CacheStaleness).Writers = 9 }},
		{"staleness: tiny TTL", newCacheStaleness(), func(s Scenario) { s.(*CacheStaleness).TTL = time.Millisecond }},
		{"staleness: negative think", newCacheStaleness(), func(s Scenario) { s.(*CacheStaleness).Think = -1 }},
		{"staleness: client-side as read", newCacheStaleness(), func(s Scenario) { s.(*CacheStaleness).Read = impl.CacheClientSide }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.s.Validate(); err != nil {
				t.Fatalf("defaults rejected: %v", err)
			}
			tc.edit(tc.s)
			if err := tc.s.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestGroupExpiries(t *testing.T) {
	t0 := time.Now()
	at := func(ms int, client int) origin.Load {
		return origin.Load{At: t0.Add(time.Duration(ms) * time.Millisecond), Client: client}
	}
	// Out of order, as a log appended by racing loads may be.
	loads := []origin.Load{at(1, 0), at(0, 1), at(3, 1), at(19, 2), at(100, 0), at(300, 3), at(115, 1)}
	got := groupExpiries(loads, 20*time.Millisecond)
	want := []struct{ loads, maxPer int }{{4, 2}, {2, 1}, {1, 1}}
	if len(got) != len(want) {
		t.Fatalf("%d expiries, want %d: %+v", len(got), len(want), got)
	}
	for i, e := range got {
		maxPer := 0
		for _, n := range e.perInstance {
			maxPer = max(maxPer, n)
		}
		if e.loads != want[i].loads || maxPer != want[i].maxPer {
			t.Errorf("expiry %d: %d loads, %d max per instance; want %d, %d", i, e.loads, maxPer, want[i].loads, want[i].maxPer)
		}
	}
	if got := groupExpiries(nil, time.Millisecond); len(got) != 0 {
		t.Errorf("no loads: %d expiries", len(got))
	}
}

func TestCacheOperations(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			op, strategy string
		}{
			{"cache.get", impl.CacheNaive},
			{"cache.get", impl.CacheSingleflight},
			{"cache.get", impl.CacheLock},
			{"cache.get", impl.CacheEarly},
			{"cache.get", impl.CacheClientSide},
			{"cache.update", impl.CacheWriteNaive},
			{"cache.update", impl.CacheWriteVersioned},
		} {
			t.Run(backend+"/"+tc.op+"/"+tc.strategy, func(t *testing.T) {
				op, err := LookupOperation(tc.op)
				if err != nil {
					t.Fatal(err)
				}
				env := testEnv(t, backend)
				lenv := &LoadEnv{
					Backend: env.Backend, Admin: env.Admin, Open: env.Open, Keys: env.Keys, KeyCount: 4,
					Pick: func(w *bench.Worker) int { return w.Rand.IntN(4) },
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				load, err := op.Setup(ctx, lenv, tc.strategy)
				if backend == impl.GoRedis && tc.strategy == impl.CacheClientSide {
					if !errors.Is(err, impl.ErrNotSupported) {
						t.Fatalf("Setup error = %v, want ErrNotSupported", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				stats, err := bench.Run(ctx, bench.Config{Concurrency: 4, Requests: 400, Seed: 1}, load.Op)
				if err != nil {
					t.Fatal(err)
				}
				if stats.ErrorCount() != 0 {
					t.Fatalf("run: %d errors %v", stats.ErrorCount(), stats.Errors)
				}
				f, err := load.Figures(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if tc.op == "cache.get" {
					if f["reads"] != 400 || f["hit_ratio"] < 0.5 || f["origin_loads"] < 4 || f["hit_p50_us"]+f["local_hit_p50_us"] <= 0 {
						t.Fatalf("figures %v", f)
					}
				} else if f["writes"] != 400 || f["version_max"] < 100 {
					t.Fatalf("figures %v", f)
				}
			})
		}
	}
}

// TestCacheSummariesAgree breaks one figure of a healthy cache-stampede
// or cache-staleness outcome at a time: the summary must say what the
// invariants say.
func TestCacheSummariesAgree(t *testing.T) {
	stampede := func() stampedeOutcome {
		return stampedeOutcome{
			strategy: impl.CacheLock, instances: 4, workers: 50, expiries: 5, maxLoads: 1, loads: 5, maxPerInstance: 1,
			reads: cacheReadTally{bySource: [5]int64{1000, 0, 10, 40, 5}}, readsPerSec: 500, entry: []any{"1", "x"}, entryOK: true, originVersion: 1,
		}
	}
	staleness := func() stalenessOutcome {
		return stalenessOutcome{
			records: 8, bound: 200 * time.Millisecond, reads: cacheReadTally{bySource: [5]int64{1000, 0, 0, 10, 20}},
			sampled: &staleSample{samples: 1000, overBound: map[string]bool{}}, writes: 50, readsPerSec: 500, originLoads: 30,
		}
	}
	for _, tc := range []struct {
		name    string
		outcome func() ([]result.Invariant, string)
		broken  []string
		say     string
		notSay  string
	}{
		{"stampede healthy", func() ([]result.Invariant, string) { o := stampede(); return o.invariants(), o.summary() }, nil, "up to 1 origin loads per expiry", "failed"},
		{"stampede loads", func() ([]result.Invariant, string) {
			o := stampede()
			o.maxLoads = 7
			return o.invariants(), o.summary()
		}, []string{"loads per expiry <= instances", "loads per expiry <= 1"}, "up to 7 origin loads per expiry", ""},
		{"stampede failed reads", func() ([]result.Invariant, string) {
			o := stampede()
			o.failed, o.reads.wrong = 3, 1
			return o.invariants(), o.summary()
		}, []string{"every read answered with the origin's record"}, "3 reads failed, 1 returned another record", ""},
		{"stampede stale entry", func() ([]result.Invariant, string) {
			o := stampede()
			o.entryOK = false
			return o.invariants(), o.summary()
		}, []string{"the cached entry is the origin's record"}, "not the origin's record", ""},
		{"staleness healthy", func() ([]result.Invariant, string) { o := staleness(); return o.invariants(), o.summary() }, nil, "0 entries outlived the bound", "older than the origin"},
		{"staleness entry outlived", func() ([]result.Invariant, string) {
			o := staleness()
			o.sampled.maxAge, o.sampled.overBound["user-1@2"] = 300*time.Millisecond, true
			return o.invariants(), o.summary()
		}, []string{"no stale entry outlived the bound"}, "old values served up to 300ms (Redis)", "0 entries outlived"},
		{"staleness old entry at the end", func() ([]result.Invariant, string) {
			o := staleness()
			o.staleAtEnd = 2
			return o.invariants(), o.summary()
		}, []string{"no entry older than the origin at the end"}, "2 of 8 entries older than the origin at the end", ""},
		{"staleness failed writes", func() ([]result.Invariant, string) {
			o := staleness()
			o.writesFailed, o.writeErr = 2, "EOF"
			return o.invariants(), o.summary()
		}, nil, "0 reads and 2 writes failed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			invs, summary := tc.outcome()
			checkSummaryMatches(t, invs, summary, tc.broken, tc.say, tc.notSay)
		})
	}
}
