package impl_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

func TestLimitOptions(t *testing.T) {
	ks := impl.MustKeyspace("pb:t:")
	d := impl.LimitOptions{Keys: ks}.WithDefaults()
	if d.Limit != 10 || d.Period != time.Second || d.Burst != 10 {
		t.Errorf("defaults = %+v, want limit 10 per 1s, burst 10", d)
	}
	if got := (impl.LimitOptions{Keys: ks, Limit: 7}).WithDefaults().Burst; got != 7 {
		t.Errorf("default burst with limit 7 = %d, want the limit", got)
	}
	for _, tc := range []struct {
		name string
		o    impl.LimitOptions
		ok   bool
	}{
		{"defaults", impl.LimitOptions{Keys: ks}, true},
		{"bounds", impl.LimitOptions{Keys: ks, Limit: impl.MaxLimit, Burst: impl.MaxLimit, Period: impl.MaxPeriod}, true},
		{"shortest", impl.LimitOptions{Keys: ks, Limit: 1, Period: impl.MinPeriod}, true},
		{"no keys", impl.LimitOptions{}, false},
		{"limit", impl.LimitOptions{Keys: ks, Limit: -3}, false},
		{"limit too big", impl.LimitOptions{Keys: ks, Limit: impl.MaxLimit + 1}, false},
		{"burst", impl.LimitOptions{Keys: ks, Burst: -1}, false},
		{"period", impl.LimitOptions{Keys: ks, Period: -time.Second}, false},
		{"period too long", impl.LimitOptions{Keys: ks, Period: impl.MaxPeriod + 1}, false},
		{"period fraction", impl.LimitOptions{Keys: ks, Period: 2*time.Millisecond + 1}, false},
	} {
		err := tc.o.WithDefaults().Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, impl.ErrInvalidLimit)) {
			t.Errorf("%s: Validate() = %v, want ok=%v (ErrInvalidLimit)", tc.name, err, tc.ok)
		}
	}
}

func TestEmissionInterval(t *testing.T) {
	for _, tc := range []struct {
		limit  int64
		period time.Duration
		want   time.Duration
	}{
		{4, time.Second, 250 * time.Millisecond},
		{3, time.Second, 333_334 * time.Microsecond}, // rounded up: never faster than 3/s
		{1_000_000, time.Millisecond, time.Microsecond},
	} {
		o := impl.LimitOptions{Limit: tc.limit, Period: tc.period}
		if got := o.EmissionInterval(); got != tc.want {
			t.Errorf("%d per %s: interval %s, want %s", tc.limit, tc.period, got, tc.want)
		}
	}
}

func TestLimitKey(t *testing.T) {
	ks := impl.MustKeyspace("pb:t:")
	want := map[string]string{
		impl.LimitNaive:         "pb:t:limit:{u%3A1}",
		impl.LimitFixedWindow:   "pb:t:limit:{u%3A1}:fw",
		impl.LimitSlidingLog:    "pb:t:limit:{u%3A1}:log",
		impl.LimitSlidingWindow: "pb:t:limit:{u%3A1}:sw",
		impl.LimitGCRA:          "pb:t:limit:{u%3A1}:gcra",
		"nope":                  "",
	}
	for s, w := range want {
		if got := impl.LimitKey(ks, s, "u:1"); got != w {
			t.Errorf("LimitKey(%q) = %q, want %q", s, got, w)
		}
	}
	if got := impl.LimitWindowKey(ks, "u:1", 42); got != "pb:t:limit:{u%3A1}:fw:42" {
		t.Errorf("LimitWindowKey = %q", got)
	}
	if !slices.Equal(impl.LimitStrategies(), []string{"naive", "fixed-window", "sliding-log", "sliding-window", "gcra"}) {
		t.Errorf("LimitStrategies() = %v", impl.LimitStrategies())
	}
}

func TestLimitScriptArgs(t *testing.T) {
	o := impl.LimitOptions{Limit: 5, Period: 250 * time.Millisecond, Burst: 2}
	if got := impl.LimitScriptArgs(o, 3); !slices.Equal(got, []string{"5", "250000", "2", "3", ""}) {
		t.Errorf("args = %q", got)
	}
	o.Now = func() time.Time { return time.UnixMicro(1_700_000_000_123_456) }
	if got := impl.LimitScriptArgs(o, 1); got[4] != "1700000000123456" {
		t.Errorf("args with a test clock = %q", got)
	}
}

func TestDecodeLimitReply(t *testing.T) {
	at := time.UnixMicro(1_700_000_000_000_001)
	for _, tc := range []struct {
		reply []int64
		want  impl.Decision
		err   bool
	}{
		{[]int64{1, 3, 0, at.UnixMicro()}, impl.Decision{Allowed: true, Remaining: 3, At: at}, false},
		{[]int64{0, 0, 1500, at.UnixMicro()}, impl.Decision{RetryAfter: 1500 * time.Microsecond, At: at}, false},
		{[]int64{0, -2, -1, at.UnixMicro()}, impl.Decision{RetryAfter: impl.NoRetry, At: at}, false},
		{[]int64{1, 2, 3}, impl.Decision{}, true},
	} {
		got, err := impl.DecodeLimitReply(tc.reply)
		if (err != nil) != tc.err || got.Allowed != tc.want.Allowed || got.Remaining != tc.want.Remaining ||
			got.RetryAfter != tc.want.RetryAfter || !got.At.Equal(tc.want.At) {
			t.Errorf("DecodeLimitReply(%v) = %+v, %v; want %+v (error %v)", tc.reply, got, err, tc.want, tc.err)
		}
	}
}

func TestValidateCost(t *testing.T) {
	for n, ok := range map[int64]bool{1: true, impl.MaxLimit: true, 0: false, -1: false, impl.MaxLimit + 1: false} {
		if err := impl.ValidateCost(n); (err == nil) != ok || (err != nil && !errors.Is(err, impl.ErrInvalidQuantity)) {
			t.Errorf("ValidateCost(%d) = %v, want ok=%v", n, err, ok)
		}
	}
}
