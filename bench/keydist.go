package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Key distributions.
const (
	// KeyUniform spreads operations evenly over the keys.
	KeyUniform = "uniform"
	// KeyZipf picks key k (0-based) with a probability proportional to
	// 1/(k+1)^s: a few keys take most of the load, as in real catalogues.
	KeyZipf = "zipf"
	// KeyHot sends a fraction of the operations to key 0, the hot key,
	// and spreads the rest evenly over the others.
	KeyHot = "hot"
)

// Defaults of the key distributions' parameters.
const (
	// DefaultZipfS is the Zipf exponent (YCSB's 0.99).
	DefaultZipfS = 0.99
	// DefaultHotFraction is the share of operations that go to the hot key.
	DefaultHotFraction = 0.9
	// MaxKeys bounds the number of keys a distribution spreads over.
	MaxKeys = 10_000_000
)

// ErrBadKeyDist is wrapped by ParseKeyDist's errors.
var ErrBadKeyDist = errors.New("bad key distribution")

// KeyDist chooses which of N keys an operation touches. It is read-only
// once built and safe for concurrent use; each worker passes its own
// random source.
type KeyDist struct {
	kind string
	n    int
	hot  float64   // KeyHot: the hot key's share
	s    float64   // KeyZipf: the exponent
	cdf  []float64 // KeyZipf: cumulative weights, cdf[n-1] == 1
}

// ParseKeyDist builds a distribution over n keys (1..MaxKeys) from its
// command-line spelling: "uniform", "zipf" or "zipf:S" (S > 0, default
// DefaultZipfS), "hot" or "hot:F" (0 <= F <= 1, default
// DefaultHotFraction).
func ParseKeyDist(spec string, n int) (*KeyDist, error) {
	if n < 1 || n > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys (want 1..%d)", ErrBadKeyDist, n, MaxKeys)
	}
	kind, param, hasParam := strings.Cut(strings.TrimSpace(spec), ":")
	num := func(def, lo, hi float64, loOpen bool) (float64, error) {
		if !hasParam {
			return def, nil
		}
		v, err := strconv.ParseFloat(param, 64)
		if err != nil || math.IsNaN(v) || v < lo || v > hi || (loOpen && v == lo) {
			return 0, fmt.Errorf("%w %q: parameter %q out of range", ErrBadKeyDist, spec, param)
		}
		return v, nil
	}
	d := &KeyDist{kind: kind, n: n}
	var err error
	switch kind {
	case KeyUniform:
		if hasParam {
			return nil, fmt.Errorf("%w %q: uniform takes no parameter", ErrBadKeyDist, spec)
		}
	case KeyZipf:
		if d.s, err = num(DefaultZipfS, 0, 100, true); err != nil {
			return nil, err
		}
		d.cdf = make([]float64, n)
		var sum float64
		for k := range n {
			sum += math.Pow(float64(k+1), -d.s)
			d.cdf[k] = sum
		}
		for k := range d.cdf {
			d.cdf[k] /= sum
		}
		d.cdf[n-1] = 1
	case KeyHot:
		if d.hot, err = num(DefaultHotFraction, 0, 1, false); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w %q (known: %s, %s[:S], %s[:F])", ErrBadKeyDist, spec, KeyUniform, KeyZipf, KeyHot)
	}
	return d, nil
}

// N returns the number of keys.
func (d *KeyDist) N() int { return d.n }

// Pick returns a key index in 0..N-1, drawn with r. It does not allocate.
func (d *KeyDist) Pick(r *rand.Rand) int {
	if d.n == 1 {
		return 0
	}
	switch d.kind {
	case KeyZipf:
		i, _ := slices.BinarySearch(d.cdf, r.Float64())
		return min(i, d.n-1)
	case KeyHot:
		if r.Float64() < d.hot {
			return 0
		}
		return 1 + r.IntN(d.n-1)
	}
	return r.IntN(d.n)
}

// String returns the distribution as ParseKeyDist reads it, with its
// parameter.
func (d *KeyDist) String() string {
	switch d.kind {
	case KeyZipf:
		return KeyZipf + ":" + strconv.FormatFloat(d.s, 'g', -1, 64)
	case KeyHot:
		return KeyHot + ":" + strconv.FormatFloat(d.hot, 'g', -1, 64)
	}
	return d.kind
}
