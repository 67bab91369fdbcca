package scenarios

import (
	"testing"

	"github.com/paybench/paybench/impl"
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
