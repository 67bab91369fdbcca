package impl

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitSetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     ConnConfig
		want    WaitSetting
		invalid bool
	}{
		{name: "off", cfg: ConnConfig{}, want: WaitSetting{}},
		{name: "default time-out", cfg: ConnConfig{WaitReplicas: 1}, want: WaitSetting{Replicas: 1, Timeout: DefaultWaitTimeout}},
		{name: "time-out", cfg: ConnConfig{WaitReplicas: 2, WaitTimeout: 50 * time.Millisecond}, want: WaitSetting{Replicas: 2, Timeout: 50 * time.Millisecond}},
		{name: "negative replicas", cfg: ConnConfig{WaitReplicas: -1}, invalid: true},
		{name: "too many replicas", cfg: ConnConfig{WaitReplicas: MaxWaitReplicas + 1}, invalid: true},
		{name: "negative time-out", cfg: ConnConfig{WaitReplicas: 1, WaitTimeout: -time.Second}, invalid: true},
		{name: "under a millisecond", cfg: ConnConfig{WaitReplicas: 1, WaitTimeout: time.Microsecond}, invalid: true},
		{name: "not under the default read time-out", cfg: ConnConfig{WaitReplicas: 1, WaitTimeout: 3 * time.Second}, invalid: true},
		{name: "not under the read time-out", cfg: ConnConfig{WaitReplicas: 1, WaitTimeout: time.Second, ReadTimeout: time.Second}, invalid: true},
		{name: "under the read time-out", cfg: ConnConfig{WaitReplicas: 1, WaitTimeout: 4 * time.Second, ReadTimeout: 5 * time.Second}, want: WaitSetting{Replicas: 1, Timeout: 4 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.invalid {
				if !errors.Is(err, ErrInvalidConnConfig) {
					t.Fatalf("Validate: %v, want ErrInvalidConnConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tc.cfg.WaitSetting(); got != tc.want {
				t.Fatalf("WaitSetting %+v, want %+v", got, tc.want)
			}
		})
	}
	w := WaitSetting{Replicas: 1, Timeout: time.Second}
	for strategy, want := range map[string]bool{StockLua: true, StockIdempotent: true, StockWatch: true, StockSharded: true, StockShardedSlots: true, StockNaive: false, StockDecr: false} {
		if got := w.Applies(strategy); got != want {
			t.Errorf("Applies(%s) = %v, want %v", strategy, got, want)
		}
	}
	if (WaitSetting{}).Applies(StockLua) {
		t.Error("no WAIT applies to lua")
	}
	if !w.Confirmed(1) || w.Confirmed(0) {
		t.Error("Confirmed: 1 of 1 confirms, 0 does not")
	}
	if got := (WaitSetting{Replicas: 1, Timeout: 300 * time.Microsecond}).Millis(); got != 1 {
		t.Errorf("Millis of 300µs = %d, want 1", got)
	}
}

func TestAwaitNode(t *testing.T) {
	ctx := context.Background()
	looks, refreshes := 0, 0
	n, ok := AwaitNode(ctx, func() (string, bool) {
		looks++
		return "node", looks == 3
	}, func() { refreshes++ })
	if !ok || n != "node" || looks != 3 || refreshes != 2 {
		t.Errorf("found %q %v after %d looks, %d refreshes; want the node at the third look, after 2 refreshes", n, ok, looks, refreshes)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := AwaitNode(cctx, func() (int, bool) { return 0, false }, nil); ok {
		t.Error("found a node that lookup never found")
	}
}
