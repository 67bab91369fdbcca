package scenarios

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func fmtFigures(f map[string]float64) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%.4g", k, f[k])
	}
	return b.String()
}

func TestRateLimitVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, strategy := range impl.LimitStrategies() {
			t.Run(backend+"/"+strategy, func(t *testing.T) {
				r := newRateLimit()
				r.Periods = 4
				cell := runJudged(t, r, testEnvC(t, backend, 16), strategy)
				t.Logf("%s: %s\n%s", cell.Verdict, cell.Summary, fmtFigures(cell.Figures))
				want := result.Pass
				if strategy == impl.LimitNaive {
					want = result.Reproduced
				}
				if cell.Verdict != want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, want, cell.Summary, cell.Invariants)
				}
				if cell.Figures["memory_bytes_per_key"] <= 0 {
					t.Errorf("no MEMORY USAGE figure: %v", cell.Figures)
				}
			})
		}
	}
}

func TestDupSubmitVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			want     result.Verdict
		}{
			{impl.DedupeNaive, result.Reproduced},
			{impl.DedupeSetNX, result.Pass},
		} {
			t.Run(backend+"/"+tc.strategy, func(t *testing.T) {
				d := newDupSubmit()
				d.Requests, d.Copies = 60, 4
				cell := runJudged(t, d, testEnvC(t, backend, 16), tc.strategy)
				t.Logf("%s: %s\n%s", cell.Verdict, cell.Summary, fmtFigures(cell.Figures))
				if cell.Verdict != tc.want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, tc.want, cell.Summary, cell.Invariants)
				}
				// The history agrees: every submission's answer, per request.
				wantHist := result.HistoryLinearizable
				if tc.want == result.Reproduced {
					wantHist = result.HistoryNotLinearizable
				}
				if h := cell.History; h == nil || h.Result != wantHist || h.Ops != 240 || h.Partitions != 60 ||
					wantHist == result.HistoryNotLinearizable && !strings.Contains(h.Witness, "were all accepted") {
					t.Fatalf("history %+v, want %s of 240 submissions in 60 partitions", h, wantHist)
				}
				f := cell.Figures
				if f["requests"] != 60 || f["submissions"] != 240 || f["accepted"]+f["refused"] != 240 {
					t.Errorf("figures do not add up: %s", fmtFigures(f))
				}
				switch tc.strategy {
				case impl.DedupeSetNX:
					if f["accepted"] != 60 || f["refused"] != 180 || f["wrong_original_id"] != 0 {
						t.Errorf("dedupe: %s", fmtFigures(f))
					}
				case impl.DedupeNaive:
					if f["accepted"] != 240 || f["processed_more_than_once"] != 60 || f["duplicates_processed"] != 180 {
						t.Errorf("naive: %s", fmtFigures(f))
					}
				}
			})
		}
	}
}

func TestLimitOperations(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, name := range []string{"limit.allow", "dedupe.submit"} {
			op, err := LookupOperation(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, strategy := range op.Strategies {
				t.Run(backend+"/"+name+"/"+strategy, func(t *testing.T) {
					env := testEnvC(t, backend, 4)
					lenv := &LoadEnv{Backend: env.Backend, Admin: env.Admin, Open: env.Open, Keys: env.Keys, KeyCount: 3,
						Pick: func(w *bench.Worker) int { return int(w.Seq % 3) }}
					load, err := op.Setup(t.Context(), lenv, strategy)
					if lib, ok := impl.LibraryOf(strategy); ok && lib.Backend != backend {
						if !errors.Is(err, impl.ErrNotSupported) {
							t.Fatalf("%s on %s: error %v, want ErrNotSupported", strategy, backend, err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					stats, err := bench.Run(t.Context(), bench.Config{Concurrency: 4, Requests: 400}, load.Op)
					if err != nil {
						t.Fatal(err)
					}
					if stats.ErrorCount() != 0 {
						t.Fatalf("run: %d errors %v", stats.ErrorCount(), stats.Errors)
					}
					f, err := load.Figures(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					yes, no := f["admitted"]+f["accepted"], f["refused"]
					if yes+no != 400 || yes == 0 || f["memory_bytes_per_key"] <= 0 {
						t.Errorf("figures: %s", fmtFigures(f))
					}
					// 3 keys: the guard passes one submission per key; a safe
					// limiter at most its limit per key and period (the run
					// may straddle two aligned windows), gcra its burst,
					// then one per 10 ms.
					periods := 2 + int64(stats.Elapsed/loadLimitPeriod)
					most := 3 * loadLimit * periods
					if strategy == impl.LimitGCRA || strategy == impl.LimitRedisRate {
						most = 3 * (loadLimit + 1 + int64(stats.Elapsed/(loadLimitPeriod/loadLimit)))
					}
					switch {
					case strategy == impl.DedupeSetNX && yes != 3,
						name == "limit.allow" && strategy != impl.LimitNaive && int64(yes) > most:
						t.Errorf("%s %s admitted %v of 400 in %s", name, strategy, yes, stats.Elapsed)
					}
				})
			}
		}
	}
}

func TestRateLimitValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r *RateLimit)
	}{
		{"no users", func(r *RateLimit) { r.Users = 0 }},
		{"no limit", func(r *RateLimit) { r.Limit = 0 }},
		{"short period", func(r *RateLimit) { r.Period = time.Millisecond }},
		{"sub-microsecond period", func(r *RateLimit) { r.Period = 20*time.Millisecond + 1 }},
		{"one period", func(r *RateLimit) { r.Periods = 1 }},
		{"negative burst", func(r *RateLimit) { r.Burst = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRateLimit()
			tc.edit(r)
			if err := r.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := newRateLimit().Validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
}

func TestDupSubmitValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(d *DupSubmit)
	}{
		{"no requests", func(d *DupSubmit) { d.Requests = 0 }},
		{"one copy", func(d *DupSubmit) { d.Copies = 1 }},
		{"short window", func(d *DupSubmit) { d.Window = 10 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDupSubmit()
			tc.edit(d)
			if err := d.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestAnalyzeLimit checks the ground-truth arithmetic on hand-made logs
// (limit 4 per 1000 µs, times in µs).
func TestAnalyzeLimit(t *testing.T) {
	o := impl.LimitOptions{Limit: 4, Period: time.Millisecond, Burst: 2}
	for _, tc := range []struct {
		name                 string
		strategy             string
		times                []int64
		sliding, fixed, over int64
		inSpan               int64
		spanStart, spanEnd   int64
	}{
		// 4 at the end of window 0 and 4 at the start of window 1: fine per
		// aligned window, 8 in one sliding window.
		{"fixed boundary burst", impl.LimitFixedWindow, []int64{900, 900, 950, 999, 1000, 1001, 1002, 1003}, 8, 4, 0, 8, 0, 2000},
		{"sliding same log", impl.LimitSlidingLog, []int64{900, 900, 950, 999, 1000, 1001, 1002, 1003}, 8, 4, 4, 8, 0, 2000},
		{"naive five in a window", impl.LimitNaive, []int64{0, 1, 2, 3, 4, 1004, 1005}, 5, 5, 1, 5, 0, 1000},
		// (t-P, t] is open at the left: 0 has left the window at 1000.
		{"sliding exact edge", impl.LimitSlidingLog, []int64{0, 1, 2, 3, 1000, 1001, 1002, 1003}, 4, 4, 0, 8, 0, 2000},
		// prev 4 weighs (1000-500)/1000 → 2; so only 2 fit at 1500.
		{"weighted ok", impl.LimitSlidingWindow, []int64{0, 1, 2, 3, 1500, 1500}, 4, 4, 0, 6, 0, 2000},
		{"weighted over", impl.LimitSlidingWindow, []int64{0, 1, 2, 3, 1500, 1500, 1500}, 4, 4, 1, 7, 0, 2000},
		// T = 250 µs, burst 2: 2 at once, then one per 250 µs.
		{"gcra ok", impl.LimitGCRA, []int64{0, 0, 250, 500, 750}, 5, 5, 0, 5, 0, 1000},
		{"gcra over", impl.LimitGCRA, []int64{0, 0, 250, 499}, 4, 4, 1, 4, 0, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := analyzeLimit(tc.strategy, o, tc.times, nil, tc.spanStart, tc.spanEnd)
			if a.maxSliding != tc.sliding || a.maxFixed != tc.fixed || a.violations != tc.over || a.inSpan != tc.inSpan {
				t.Errorf("got sliding %d fixed %d over %d inSpan %d; want %d %d %d %d",
					a.maxSliding, a.maxFixed, a.violations, a.inSpan, tc.sliding, tc.fixed, tc.over, tc.inSpan)
			}
		})
	}
	// A refused request is a lock-out when fewer than limit admissions
	// were in (t-P, t].
	admitted := []int64{0, 100, 200, 300}
	if got := limitLockouts(admitted, []int64{300, 999, 1000, 1250, 1301}, 1000, 4); got != 3 {
		t.Errorf("lockouts = %d, want 3 (1000, 1250 and 1301)", got)
	}
}

// TestReplayLimit replays each rule over the conformance suite's boundary
// schedule (limit 4 per second) and must find the suite's exact counts.
func TestReplayLimit(t *testing.T) {
	var requests []int64
	requests = append(requests, 0)
	for _, at := range []int64{900_000, 1_000_000, 1_500_000, 2_050_000} {
		for range 4 {
			requests = append(requests, at)
		}
	}
	for _, tc := range []struct {
		strategy string
		burst    int64
		want     int64
	}{
		{impl.LimitFixedWindow, 4, 12},
		{impl.LimitSlidingLog, 4, 9},
		{impl.LimitSlidingWindow, 4, 8},
		{impl.LimitGCRA, 4, 9},
		{impl.LimitGCRA, 1, 4},
		{impl.LimitNaive, 4, 0},
	} {
		o := impl.LimitOptions{Limit: 4, Period: time.Second, Burst: tc.burst}
		if got := replayLimit(tc.strategy, o, nil, requests); got != tc.want {
			t.Errorf("%s burst %d: replay admits %d, want %d", tc.strategy, tc.burst, got, tc.want)
		}
		// Given the admissions it made, the rule admits them again, and
		// exactly them.
		if tc.strategy == impl.LimitFixedWindow {
			admitted := []int64{0, 900_000, 900_000, 900_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 2_050_000, 2_050_000, 2_050_000, 2_050_000}
			refused := []int64{900_000, 1_500_000, 1_500_000, 1_500_000, 1_500_000}
			a := analyzeLimit(tc.strategy, o, admitted, refused, 0, 3_000_000)
			if a.vsRule != 1 || a.violations != 0 || a.maxFixed != 4 || a.maxSliding != 7 {
				t.Errorf("fixed-window analysis: %+v", a)
			}
		}
	}
}

// failCommand is a go-redis hook that fails every command of one name, as
// a broken connection or a refusing server would fail paybench's own
// reads and writes.
type failCommand struct{ name string }

var errInjected = errors.New("ERR injected: paybench's own command failed")

// DialHook implements redis.Hook.
func (f failCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (f failCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == f.name {
			cmd.SetErr(errInjected)
			return errInjected
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (f failCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == f.name {
				for _, c := range cmds {
					c.SetErr(errInjected)
				}
				return errInjected
			}
		}
		return next(ctx, cmds)
	}
}

// TestBookkeepingFailuresAreJudgementErrors fails one command of
// paybench's own admin client — one only the scenario's bookkeeping after
// (or beside) the load sends — and checks that the cell comes back with
// its measured figures and an error marked as a judgement failure
// (ErrJudgement: the runner makes it INCONCLUSIVE), not as a cell that
// could not run.
func TestBookkeepingFailuresAreJudgementErrors(t *testing.T) {
	for _, tc := range []struct {
		scenario Scenario
		strategy string
		command  string // the admin command that fails
	}{
		{newDupSubmit(), impl.DedupeSetNX, "rpush"},
		{newRateLimit(), impl.LimitGCRA, "zadd"},
		{newLockRace(), impl.LockToken, "hincrby"},
		{newLockExpiry(), impl.LockFenced, "lrange"},
		{newCacheStampede(), impl.CacheLock, "hmget"},
		{newCacheStaleness(), impl.CacheWriteVersioned, "hmget"},
	} {
		t.Run(tc.scenario.Name(), func(t *testing.T) {
			env, _ := hookedEnv(t, impl.GoRedis, 8)
			env.Admin.AddHook(failCommand{name: tc.command})
			smallScenario(t, tc.scenario, env)
			if err := tc.scenario.Validate(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cell, err := tc.scenario.Run(ctx, env, tc.strategy)
			if !errors.Is(err, ErrJudgement) || !errors.Is(err, errInjected) {
				t.Fatalf("error %v: want a judgement error wrapping the injected one", err)
			}
			if cell.Ops == 0 || len(cell.Figures) == 0 || cell.Latency.Corrected.Count == 0 {
				t.Errorf("the cell lost what it measured: %d ops, figures %v", cell.Ops, cell.Figures)
			}
		})
	}
}
