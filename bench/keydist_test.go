package bench

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/reports/result"
)

func TestKeyDistributions(t *testing.T) {
	const draws = 200_000
	for _, tc := range []struct {
		spec  string
		n     int
		check func(t *testing.T, counts []int)
	}{
		{"uniform", 1, func(t *testing.T, c []int) {
			if c[0] != draws {
				t.Errorf("one key got %d of %d", c[0], draws)
			}
		}},
		{"uniform", 10, func(t *testing.T, c []int) {
			for k, n := range c {
				if n < draws/10*9/10 || n > draws/10*11/10 {
					t.Errorf("key %d got %d, want about %d", k, n, draws/10)
				}
			}
		}},
		{"hot", 10, func(t *testing.T, c []int) {
			if share := float64(c[0]) / draws; share < 0.89 || share > 0.91 {
				t.Errorf("hot key share %.3f, want 0.9", share)
			}
			for k := 1; k < 10; k++ {
				if c[k] == 0 {
					t.Errorf("key %d never picked", k)
				}
			}
		}},
		{"hot:0.5", 2, func(t *testing.T, c []int) {
			if share := float64(c[0]) / draws; share < 0.49 || share > 0.51 {
				t.Errorf("hot key share %.3f, want 0.5", share)
			}
		}},
		{"zipf:1", 100, func(t *testing.T, c []int) {
			// p(k) ∝ 1/(k+1): key 0 twice key 1, ten times key 9.
			if r := float64(c[0]) / float64(c[1]); r < 1.85 || r > 2.15 {
				t.Errorf("key0/key1 = %.2f, want 2", r)
			}
			if r := float64(c[0]) / float64(c[9]); r < 8.5 || r > 11.5 {
				t.Errorf("key0/key9 = %.2f, want 10", r)
			}
		}},
		{"zipf", 1000, func(t *testing.T, c []int) {
			if c[0] <= c[1] || c[1] <= c[10] || c[10] <= c[999] {
				t.Errorf("not decreasing: %d %d %d", c[0], c[1], c[10])
			}
		}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			d, err := ParseKeyDist(tc.spec, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			counts := make([]int, tc.n)
			for range draws {
				k := d.Pick(r)
				if k < 0 || k >= tc.n {
					t.Fatalf("picked %d of %d keys", k, tc.n)
				}
				counts[k]++
			}
			tc.check(t, counts)
			if allocs := testing.AllocsPerRun(100, func() { d.Pick(r) }); allocs != 0 {
				t.Errorf("Pick allocates %.1f", allocs)
			}
		})
	}
}

func TestParseKeyDistRejects(t *testing.T) {
	for _, tc := range []struct {
		spec string
		n    int
	}{
		{"uniform", 0}, {"uniform", MaxKeys + 1}, {"pareto", 10}, {"uniform:3", 10},
		{"zipf:0", 10}, {"zipf:-1", 10}, {"zipf:x", 10}, {"hot:1.5", 10}, {"hot:-0.1", 10}, {"", 10},
	} {
		if _, err := ParseKeyDist(tc.spec, tc.n); !errors.Is(err, ErrBadKeyDist) {
			t.Errorf("ParseKeyDist(%q, %d) = %v, want ErrBadKeyDist", tc.spec, tc.n, err)
		}
	}
	for spec, want := range map[string]string{"uniform": "uniform", "zipf": "zipf:0.99", "zipf:1.2": "zipf:1.2", "hot": "hot:0.9"} {
		d, err := ParseKeyDist(spec, 5)
		if err != nil || d.String() != want || d.N() != 5 {
			t.Errorf("ParseKeyDist(%q) = %v, %v", spec, d, err)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	l := NewProgressLine(&b, "stock.deduct rueidis/lua")
	l.Done() // nothing written yet: nothing to erase
	if b.Len() != 0 {
		t.Fatalf("Done wrote %q before any update", b.String())
	}
	l.Update(Progress{Warmup: true, Elapsed: 1500 * time.Millisecond, Workers: 4})
	l.Update(Progress{Elapsed: 3 * time.Second, Ops: 1234567, Errors: 2, Rate: 41234, Workers: 50, Behind: 1200,
		Last: result.Point{P99: 1520}})
	l.Done()
	out := b.String()
	for _, want := range []string{"warm-up 1s", "ops 1,234,567", "now 41,234/s", "p99 1.52ms", "errors 2", "workers 50", "behind 1,200", "\r\x1b[2K"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q: %q", want, out)
		}
	}
	if strings.Contains(out, "\n") {
		t.Errorf("progress wrote a newline: %q", out)
	}
	for us, want := range map[int64]string{0: "-", 999: "999µs", 1500: "1.50ms", 2_500_000: "2.50s"} {
		if got := formatMicros(us); got != want {
			t.Errorf("formatMicros(%d) = %q, want %q", us, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}
