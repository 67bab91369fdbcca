package bench

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestConstantPacerComputesFromTheStart(t *testing.T) {
	p := ConstantPacer{Rate: 2000}
	for _, tc := range []struct {
		elapsed time.Duration
		n       uint64
		want    time.Duration
	}{
		{0, 0, 0},
		{0, 1, 500 * time.Microsecond},
		{0, 2000, time.Second},
		{time.Second, 2000, 0},
		{2 * time.Second, 2000, -time.Second}, // overdue: negative
		{0, 20_000_000, 10_000 * time.Second}, // no drift at large n
	} {
		w, stop := p.Pace(tc.elapsed, tc.n)
		if stop || w != tc.want {
			t.Errorf("Pace(%s, %d) = %s, %v; want %s", tc.elapsed, tc.n, w, stop, tc.want)
		}
	}
	if _, stop := (ConstantPacer{}).Pace(0, 0); !stop {
		t.Error("a zero rate does not stop")
	}
}

func TestLinearPacer(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    LinearPacer
		n    uint64
		want time.Duration
	}{
		// Hold 1000/s for 1 s: slot 500 at 0.5 s.
		{"held", LinearPacer{From: 1000, To: 3000, Delay: time.Second, Over: time.Second}, 500, 500 * time.Millisecond},
		// The ramp 1000→3000 over 1 s adds 2000 slots; slot 1000 (its start) at 1 s.
		{"ramp start", LinearPacer{From: 1000, To: 3000, Delay: time.Second, Over: time.Second}, 1000, time.Second},
		// Half-way into the ramp: 1000*0.5 + 1000*0.25 = 750 slots.
		{"mid ramp", LinearPacer{From: 1000, To: 3000, Delay: time.Second, Over: time.Second}, 1750, 1500 * time.Millisecond},
		// After the ramp, 3000/s: slot 3000+3000 at 3 s.
		{"after ramp", LinearPacer{From: 1000, To: 3000, Delay: time.Second, Over: time.Second}, 6000, 3 * time.Second},
		// Falling ramp 3000→1000 over 1 s: 1250 slots by 0.5 s.
		{"falling", LinearPacer{From: 3000, To: 1000, Over: time.Second}, 1250, 500 * time.Millisecond},
		// From zero: rate = 2000 t, slots = 1000 t², slot 250 at 0.5 s.
		{"from zero", LinearPacer{From: 0, To: 2000, Over: time.Second}, 250, 500 * time.Millisecond},
		{"flat", LinearPacer{From: 100, To: 100, Over: time.Second}, 50, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, stop := tc.p.Pace(0, tc.n)
			if stop || (w-tc.want).Abs() > time.Microsecond {
				t.Fatalf("slot %d due at %s (stop %v), want %s", tc.n, w, stop, tc.want)
			}
		})
	}
	// Due times never decrease.
	p := LinearPacer{From: 5000, To: 10, Delay: 100 * time.Millisecond, Over: time.Second}
	prev := time.Duration(-1)
	for n := uint64(0); n < 3000; n++ {
		at, ok := due(p, n)
		if !ok || at < prev {
			t.Fatalf("slot %d due at %s after %s (ok %v)", n, at, prev, ok)
		}
		prev = at
	}
	// A ramp down to zero ends the schedule.
	if _, stop := (LinearPacer{From: 1000, To: 0, Over: time.Second}).Pace(0, 501); !stop {
		t.Error("a ramp to zero does not end")
	}
}

func TestSlotsBefore(t *testing.T) {
	p := ConstantPacer{Rate: 1000}
	for _, tc := range []struct {
		at    time.Duration
		limit uint64
		want  uint64
	}{
		{0, math.MaxUint64, 0},
		{time.Nanosecond, math.MaxUint64, 1},
		{time.Millisecond, math.MaxUint64, 1},
		{time.Millisecond + 1, math.MaxUint64, 2},
		{10 * time.Second, math.MaxUint64, 10_000},
		{10 * time.Second, 77, 77},
		{10 * time.Second, 0, 0},
		{time.Hour, math.MaxUint64, 3_600_000},
	} {
		if got := slotsBefore(p, tc.at, tc.limit); got != tc.want {
			t.Errorf("slotsBefore(%s, %d) = %d, want %d", tc.at, tc.limit, got, tc.want)
		}
	}
	// A schedule that ends.
	ramp := LinearPacer{From: 1000, To: 0, Over: time.Second} // 500 slots
	if got := slotsBefore(ramp, time.Hour, math.MaxUint64); got != 500 {
		t.Errorf("slots of a finite ramp = %d, want 500", got)
	}
}

func TestParseRate(t *testing.T) {
	good := []struct {
		in   string
		want Pacer
	}{
		{"2000", ConstantPacer{Rate: 2000}},
		{"2000/s", ConstantPacer{Rate: 2000}},
		{"0.5", ConstantPacer{Rate: 0.5}},
		{"1000:5000", LinearPacer{From: 1000, To: 5000, Delay: time.Second, Over: 10 * time.Second}},
		{"0:100", LinearPacer{From: 0, To: 100, Delay: time.Second, Over: 10 * time.Second}},
	}
	for _, tc := range good {
		p, err := ParseRate(tc.in, time.Second, 10*time.Second)
		if err != nil || p != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, p, err, tc.want)
		}
	}
	for _, in := range []string{"", "0", "-5", "fast", "NaN", "Inf", "1e12", "1:", ":5", "0:0", "1:2:3", "5:x"} {
		if p, err := ParseRate(in, 0, time.Second); err == nil || !errors.Is(err, ErrBadRate) {
			t.Errorf("ParseRate(%q) = %v, %v; want ErrBadRate", in, p, err)
		}
	}
	if _, err := ParseRate("1:2", 0, 0); !errors.Is(err, ErrBadRate) {
		t.Errorf("a ramp without a duration: %v", err)
	}
}
