package bench

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// oneLine fails the fuzz input when err's message spans lines or is empty:
// the command line prints it as one line.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error message is not one line: %q", msg)
	}
}

// FuzzParseRate checks the --rate parser and the schedule it builds: an
// error wraps ErrBadRate and is one line; a pacer has the rates it was
// given, reparses from its own spelling, its due times never decrease, and
// slotsBefore agrees with them.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"2000", "2000/s", "0.5", "1000:5000", "0:100", "100:0", " 7 ", "1e9", "1e-300",
		"", "0", "-5", "fast", "NaN", "Inf", "1e12", "1:", ":5", "0:0", "1:2:3", "5:x", "0x10", "1_000"} {
		f.Add(s, int64(time.Second), int64(10*time.Second))
	}
	f.Add("3:1", int64(0), int64(1))
	f.Add("1e9:1e-9", int64(time.Hour), int64(time.Millisecond))
	f.Fuzz(func(t *testing.T, s string, warmupNs, rampNs int64) {
		// The command line passes a warm-up >= 0 and the duration as the
		// ramp; keep them in its range (up to a day).
		warmup := time.Duration(absMod(warmupNs, int64(24*time.Hour)))
		ramp := time.Duration(absMod(rampNs, int64(24*time.Hour)))
		p, err := ParseRate(s, warmup, ramp)
		if err != nil {
			if !errors.Is(err, ErrBadRate) {
				t.Fatalf("ParseRate(%q) error %v does not wrap ErrBadRate", s, err)
			}
			oneLine(t, err)
			return
		}
		_ = p.(interface{ String() string }).String()
		switch p := p.(type) {
		case ConstantPacer:
			if !(p.Rate > 0 && p.Rate <= 1e9) {
				t.Fatalf("ParseRate(%q) = rate %v", s, p.Rate)
			}
			again, err := ParseRate(p.String(), warmup, ramp)
			if err != nil || again != p {
				t.Fatalf("ParseRate(%q) = %v; its spelling %q reparses as %v, %v", s, p, p.String(), again, err)
			}
		case LinearPacer:
			if !(p.From >= 0 && p.To >= 0 && p.From <= 1e9 && p.To <= 1e9 && p.From+p.To > 0) || p.Over != ramp || p.Delay != warmup {
				t.Fatalf("ParseRate(%q, %s, %s) = %+v", s, warmup, ramp, p)
			}
			again, err := ParseRate(formatRate(p.From)+":"+formatRate(p.To), warmup, ramp)
			if err != nil || again != p {
				t.Fatalf("ParseRate(%q) = %+v; reparsed as %+v, %v", s, p, again, err)
			}
		default:
			t.Fatalf("ParseRate(%q) = %T", s, p)
		}
		checkSchedule(t, p)
	})
}

// checkSchedule checks p's due times at the start, around a few points
// through its schedule and far out: they never decrease, and slotsBefore
// each one agrees with them.
func checkSchedule(t *testing.T, p Pacer) {
	t.Helper()
	ns := []uint64{0, 1, 2, 3, 10, 11, 12, 1000, 1001, 1002, 1 << 20, 1<<20 + 1, 1<<20 + 2, 1 << 40, 1<<40 + 1, 1<<40 + 2}
	prev, prevN := time.Duration(math.MinInt64), uint64(0)
	for _, n := range ns {
		at, ok := due(p, n)
		if !ok {
			// The schedule ended: it stays ended.
			if _, ok := due(p, n+1); ok {
				t.Fatalf("%v: slot %d is past the end, slot %d is not", p, n, n+1)
			}
			break
		}
		if at < 0 || at < prev {
			t.Fatalf("%v: slot %d due at %s, after slot %d at %s", p, n, at, prevN, prev)
		}
		if c, isConst := p.(ConstantPacer); isConst && n == 0 && at != 0 {
			t.Fatalf("%v: slot 0 due at %s, want the start", c, at)
		}
		// slotsBefore(at) counts the slots due strictly before at: n of
		// them at most (n and the slots due with it are not), and slot n-1
		// is among them unless it is due at the same time.
		if got := slotsBefore(p, at, math.MaxUint64); got > n {
			t.Fatalf("%v: slotsBefore(%s) = %d, but slot %d is due then", p, at, got, n)
		}
		if got := slotsBefore(p, at+1, math.MaxUint64); got < n+1 {
			t.Fatalf("%v: slotsBefore(%s) = %d, but slots 0..%d are due by %s", p, at+1, got, n, at)
		}
		prev, prevN = at, n
	}
}

// absMod returns |v| mod m, for v of any sign (math.MinInt64 included).
func absMod(v, m int64) int64 {
	r := v % m
	if r < 0 {
		r = -r
	}
	return r
}

// FuzzParseKeyDist checks the --key-dist parser: an error wraps
// ErrBadKeyDist and is one line; a distribution has the key count it was
// given, reparses from its own spelling, and picks keys in range.
func FuzzParseKeyDist(f *testing.F) {
	for _, s := range []string{"uniform", "zipf", "zipf:0.99", "zipf:2", "hot", "hot:0.5", "hot:0", "hot:1", " zipf ",
		"", "pareto", "zipf:-1", "zipf:0", "zipf:NaN", "hot:2", "hot:", "uniform:1", "zipf:1e-300", "zipf:100", "hot:-0"} {
		f.Add(s, 50)
	}
	f.Add("zipf", 1)
	f.Add("hot", 2)
	f.Add("uniform", 0)
	f.Add("uniform", -1)
	f.Add("uniform", MaxKeys+1)
	f.Fuzz(func(t *testing.T, spec string, n int) {
		// Up to 1000 keys: a Zipf table of MaxKeys takes its time, and
		// the bounds on n are checked at the edges.
		if n > 1000 && n != MaxKeys+1 {
			n = n%1000 + 1
		}
		d, err := ParseKeyDist(spec, n)
		if err != nil {
			if !errors.Is(err, ErrBadKeyDist) {
				t.Fatalf("ParseKeyDist(%q, %d) error %v does not wrap ErrBadKeyDist", spec, n, err)
			}
			oneLine(t, err)
			return
		}
		if n < 1 || n > MaxKeys || d.N() != n {
			t.Fatalf("ParseKeyDist(%q, %d) accepted, N() = %d", spec, n, d.N())
		}
		again, err := ParseKeyDist(d.String(), n)
		if err != nil || again.String() != d.String() || again.kind != d.kind || again.s != d.s || again.hot != d.hot {
			t.Fatalf("ParseKeyDist(%q) = %s; reparsed as %v, %v", spec, d, again, err)
		}
		for i := 1; i < len(d.cdf); i++ {
			if !(d.cdf[i] >= d.cdf[i-1]) {
				t.Fatalf("%s: cdf decreases at %d: %v", d, i, d.cdf)
			}
		}
		r := rand.New(rand.NewPCG(uint64(n), uint64(len(spec))))
		for range 64 {
			if k := d.Pick(r); k < 0 || k >= n {
				t.Fatalf("%s over %d keys picked %d", d, n, k)
			}
		}
	})
}
