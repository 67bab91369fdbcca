package goredis

import (
	"maps"
	"testing"

	"github.com/paybench/paybench/impl"
)

// TestURLParams: a parameter counts as set when its last value is not
// blank (go-redis reads a blank value as its own default).
func TestURLParams(t *testing.T) {
	got, err := urlParams("redis://h:1/0?read_timeout=1s&dial_timeout=&max_retries=2&max_retries=")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"read_timeout": true, "dial_timeout": false, "max_retries": false}
	if !maps.Equal(got, want) {
		t.Errorf("urlParams = %v, want %v", got, want)
	}
	if _, err := urlParams("redis://h:1/%zz"); err == nil {
		t.Errorf("urlParams of a bad URL: no error")
	}
}

func TestRedisRateNow(t *testing.T) {
	for _, tc := range []struct {
		tat, reset string
		want       int64 // Unix µs
		bad        bool
	}{
		// now = 2017-01-01 + 300000000.25 s: TAT 0.25 s later.
		{"300000000.5", "0.25", (impl.RedisRateEpoch+300000000)*1_000_000 + 250_000, false},
		// A TAT that float rounding left 1e-8 s off still gives the µs.
		{"300000000.50000001", "0.25", (impl.RedisRateEpoch+300000000)*1_000_000 + 250_000, false},
		{"", "0.25", 0, true},
		{"300000000.5", "x", 0, true},
	} {
		got, err := redisRateNow(tc.tat, tc.reset)
		if (err != nil) != tc.bad || (!tc.bad && got.UnixMicro() != tc.want) {
			t.Errorf("redisRateNow(%q, %q) = %d, %v; want %d (error %t)", tc.tat, tc.reset, got.UnixMicro(), err, tc.want, tc.bad)
		}
	}
}
