package scenarios

import (
	"context"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/reports/result"
)

func TestRedlockBareMajority(t *testing.T) {
	for _, tc := range []struct {
		name    string
		holders []string
		want    int
	}{
		{"free", []string{"", "", "", "", ""}, -1},
		{"held everywhere", []string{"a", "a", "a", "a", "a"}, -1},
		{"held on four", []string{"a", "a", "a", "a", ""}, -1},
		{"bare majority", []string{"a", "", "a", "a", ""}, 2},
		{"bare majority without the first", []string{"", "a", "", "a", "a"}, 1},
		{"split race", []string{"a", "b", "a", "b", "a"}, 2},
		{"single-server lock", []string{"a", "", "", "", ""}, -1},
		{"two of five", []string{"a", "a", "", "", ""}, -1},
	} {
		f := &redlockFault{quorum: len(tc.holders)/2 + 1}
		if got := f.bareMajority(tc.holders); got != tc.want {
			t.Errorf("%s: bareMajority(%q) = %d, want %d", tc.name, tc.holders, got, tc.want)
		}
	}
	// One server: the quorum is every server, nothing to break.
	if got := (&redlockFault{quorum: 1}).bareMajority([]string{"a"}); got != -1 {
		t.Errorf("one server: %d, want -1", got)
	}
}

func TestLimitFloatSlack(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		n        int
		want     int64
	}{
		{impl.LimitGCRA, 1000, 0},
		{impl.LimitSlidingLog, 1000, 0},
		{impl.LimitRedisRate, 0, 1},
		{impl.LimitRedisRate, 32, 1},
		{impl.LimitRedisRate, 33, 2},
		{impl.LimitRedisRate, 1000, 31},
	} {
		if got := limitFloatSlack(tc.strategy, tc.n); got != tc.want {
			t.Errorf("limitFloatSlack(%s, %d) = %d, want %d", tc.strategy, tc.n, got, tc.want)
		}
	}
	// A whole admission early is an over-admission whatever the slack.
	var a limitAnalysis
	times := []int64{0, 0, 25_000, 49_999, 75_000}
	a.checkGCRA(times, 25_000, 2, 2)
	if a.violations != 0 || a.slackUsed != 1 || a.slackMax != 1 {
		t.Errorf("1µs early within a 2µs slack: %+v", a)
	}
	a = limitAnalysis{}
	a.checkGCRA([]int64{0, 0, 0}, 25_000, 2, 2)
	if a.violations != 1 {
		t.Errorf("three at once with burst 2: %+v, want one violation", a)
	}
}

// TestLockRaceFirstServerRestart: on a Redlock deployment, a lock that
// lives on the first server only has that server restarted without
// persistence while a holder is inside. The lock's keys are lost; the
// probe's books, the counter, the resource and every other key of the
// cell survive (restored), so the books still add up; the cell records
// the restarts as faults of its own and expects the break.
func TestLockRaceFirstServerRestart(t *testing.T) {
	first, peer := redistest.Spawn(t), redistest.Spawn(t)
	for _, strategy := range []string{impl.LockToken, impl.LockFenced} {
		t.Run(strategy, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			be, err := backends.Open(ctx, impl.GoRedis, impl.ConnConfig{URL: first.URL, Password: first.Password})
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			ks, err := impl.NewKeyspace("restart-test:" + strategy + ":")
			if err != nil {
				t.Fatal(err)
			}
			other := ks.Key("other")
			if err := first.Admin().Set(ctx, other, "kept", 0).Err(); err != nil {
				t.Fatal(err)
			}
			env := &Env{
				Backend: be, Admin: first.Admin(), Keys: ks,
				Common:  Common{Concurrency: 20, Duration: 1500 * time.Millisecond, Seed: 1},
				Redlock: []RedlockPeer{peer}, RedlockFirst: first,
			}
			s := newLockRace()
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			cell, err := s.Run(ctx, env, strategy)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", strategy, cell.Summary)
			if cell.Figures["redlock_restarts"] < 1 || cell.Figures["redlock_restart_errors"] != 0 {
				t.Fatalf("figures %v: want the first server restarted, without errors", cell.Figures)
			}
			if len(cell.Faults) != 1 || cell.Faults[0].Kind != faults.Restart || cell.Faults[0].Count != int(cell.Figures["redlock_restarts"]) {
				t.Errorf("faults %+v, want the restarts", cell.Faults)
			}
			if cell.Expect != result.Break {
				t.Errorf("expect %q, want break under the restart", cell.Expect)
			}
			for _, inv := range cell.Invariants {
				if inv.Name == "every critical section was counted" && !inv.Holds {
					t.Errorf("the probe's books did not survive the restart: %s", inv.Detail)
				}
			}
			if v, err := first.Admin().Get(ctx, other).Result(); err != nil || v != "kept" {
				t.Errorf("the cell's other key after the restarts: %q, %v; want it restored", v, err)
			}
			if _, ok := cell.Figures["resource_rejected"]; !ok {
				t.Errorf("figures %v: no resource writes", cell.Figures)
			}
		})
	}
}
