package impl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Limiter strategies.
const (
	// LimitNaive is the seed's rate_limit: GET the counter, compare in the
	// client, then SETEX it to count+1 with the full period. Concurrent
	// requests over-admit (lost updates), and every admission restarts the
	// window, so a steady client is locked out of a window that never ends.
	LimitNaive = "naive"
	// LimitFixedWindow counts admissions in windows aligned to the server
	// clock (floor(now/period)), one INCRBY counter per window whose expiry
	// is set only when the window's first admission creates it.
	LimitFixedWindow = "fixed-window"
	// LimitSlidingLog keeps one sorted-set entry per admission, scored by
	// server time, and trims and counts it in one script: exact over every
	// sliding window, memory proportional to the limit.
	LimitSlidingLog = "sliding-log"
	// LimitSlidingWindow is the two-window weighted counter: the previous
	// aligned window's count, weighted by how much of it still overlaps the
	// sliding window, plus the current window's count.
	LimitSlidingWindow = "sliding-window"
	// LimitGCRA is the generic cell rate algorithm (as redis-cell and
	// go-redis/redis_rate): one theoretical arrival time per key, an
	// emission interval of period/limit, and a burst tolerance.
	LimitGCRA = "gcra"
)

// LimitStrategies lists the limiter strategies in display order.
func LimitStrategies() []string {
	return []string{LimitNaive, LimitFixedWindow, LimitSlidingLog, LimitSlidingWindow, LimitGCRA}
}

// Bounds of LimitOptions. They keep every product the scripts compute
// (limit × period in microseconds, burst × emission interval) below 2^53,
// where Lua's double-precision numbers are still exact integers.
const (
	// MaxLimit is the largest Limit and Burst a limiter accepts.
	MaxLimit = 1_000_000
	// MinPeriod is the shortest Period a limiter accepts.
	MinPeriod = time.Millisecond
	// MaxPeriod is the longest Period a limiter accepts.
	MaxPeriod = time.Hour
)

// NoRetry is the Decision.RetryAfter of a refusal that waiting cannot cure:
// the request asks for more than the limit (or the gcra burst) allows at
// once.
const NoRetry time.Duration = -1

// ErrInvalidLimit is returned (wrapped) for LimitOptions out of bounds.
var ErrInvalidLimit = errors.New("invalid rate limit")

// Decision is a limiter's answer to one request.
type Decision struct {
	// Allowed is true when the request was admitted (and counted).
	Allowed bool
	// Remaining is how many more units the key could be admitted right
	// now, after this decision (never negative).
	Remaining int64
	// RetryAfter is 0 when the request was admitted. When it was refused,
	// it is how long until the same request would be admitted if nothing
	// else were admitted meanwhile, or NoRetry. The naive strategy does
	// not read the key's expiry and reports the period, an upper bound.
	RetryAfter time.Duration
	// At is the server time the decision was taken at (the script's TIME,
	// or the test clock of LimitOptions.Now). It is zero for the naive
	// strategy, which reads no clock.
	At time.Time
}

// Limiter is the rate-limit family: at most Limit units per Period per key.
type Limiter interface {
	// Allow asks to admit n units (usually 1 request) for key, and counts
	// them when admitted. n must be 1..MaxLimit.
	Allow(ctx context.Context, key string, n int64) (Decision, error)
}

// LimitOptions tunes a limiter.
type LimitOptions struct {
	// Keys is the run's keyspace; required.
	Keys Keyspace
	// Limit is the number of units admitted per Period (default 10).
	Limit int64
	// Period is the length of the window (default 1 s), whole
	// microseconds, MinPeriod..MaxPeriod.
	Period time.Duration
	// Burst is gcra's burst: how many units an idle key may be admitted at
	// once (default Limit, as redis_rate's PerSecond etc.). Other
	// strategies ignore it.
	Burst int64
	// Now is for tests only: when set, the scripts take the time from it
	// instead of the server's TIME, so that a test can place requests
	// exactly on and across window boundaries. Production code leaves it
	// nil. The naive strategy reads no clock and ignores it.
	Now func() time.Time
}

// WithDefaults returns o with zero fields set to their defaults.
func (o LimitOptions) WithDefaults() LimitOptions {
	if o.Limit == 0 {
		o.Limit = 10
	}
	if o.Period == 0 {
		o.Period = time.Second
	}
	if o.Burst == 0 {
		o.Burst = o.Limit
	}
	return o
}

// Validate checks o after WithDefaults: Keys set, Limit and Burst
// 1..MaxLimit, Period MinPeriod..MaxPeriod in whole microseconds.
func (o LimitOptions) Validate() error {
	switch {
	case o.Keys.Prefix() == "":
		return fmt.Errorf("%w: LimitOptions.Keys is required", ErrInvalidLimit)
	case o.Limit <= 0 || o.Limit > MaxLimit:
		return fmt.Errorf("%w: limit %d (must be 1..%d)", ErrInvalidLimit, o.Limit, MaxLimit)
	case o.Burst <= 0 || o.Burst > MaxLimit:
		return fmt.Errorf("%w: burst %d (must be 1..%d)", ErrInvalidLimit, o.Burst, MaxLimit)
	case o.Period < MinPeriod || o.Period > MaxPeriod:
		return fmt.Errorf("%w: period %s (must be %s..%s)", ErrInvalidLimit, o.Period, MinPeriod, MaxPeriod)
	case o.Period%time.Microsecond != 0:
		return fmt.Errorf("%w: period %s is not a whole number of microseconds", ErrInvalidLimit, o.Period)
	}
	return nil
}

// ValidateCost returns an error wrapping ErrInvalidQuantity unless
// 0 < n <= MaxLimit.
func ValidateCost(n int64) error {
	if n <= 0 || n > MaxLimit {
		return fmt.Errorf("%w: %d units (must be 1..%d)", ErrInvalidQuantity, n, MaxLimit)
	}
	return nil
}

// EmissionInterval is gcra's interval between two units at the sustained
// rate: Period/Limit rounded up to a whole microsecond, so that the script
// works in exact integers and never admits faster than Limit per Period.
func (o LimitOptions) EmissionInterval() time.Duration {
	us := o.Period.Microseconds()
	return time.Duration((us+o.Limit-1)/o.Limit) * time.Microsecond
}

// LimitBackend is implemented by backends that offer the limiter family.
type LimitBackend interface {
	// Limiter returns the named strategy (one of LimitStrategies).
	Limiter(strategy string, opts LimitOptions) (Limiter, error)
}

// LimitKey is the key a strategy keeps key's state in:
//
//   - naive:          prefix + "limit:{<key>}", a string counter (the
//     seed's "limit:<user_id>")
//   - fixed-window:   prefix + "limit:{<key>}:fw", never a key itself: the
//     prefix of the window keys (LimitWindowKey)
//   - sliding-log:    prefix + "limit:{<key>}:log", a sorted set of
//     admissions scored by server time in microseconds
//   - sliding-window: prefix + "limit:{<key>}:sw", a hash {w, cur, prev}
//   - gcra:           prefix + "limit:{<key>}:gcra", a string holding the
//     theoretical arrival time in microseconds
//   - redis_rate:     prefix + "limit:{<key>}:redis_rate", the library's
//     string holding the theoretical arrival time in seconds since
//     2017-01-01 UTC, a float (the library's "rate:" key prefix is
//     dropped, so that the key stays under the run's prefix)
//
// Every key of one limited key shares its hash tag. An unknown strategy
// yields "".
func LimitKey(k Keyspace, strategy, key string) string {
	switch strategy {
	case LimitNaive:
		return k.Tagged("limit", key)
	case LimitFixedWindow:
		return k.Tagged("limit", key, "fw")
	case LimitSlidingLog:
		return k.Tagged("limit", key, "log")
	case LimitSlidingWindow:
		return k.Tagged("limit", key, "sw")
	case LimitGCRA:
		return k.Tagged("limit", key, "gcra")
	case LimitRedisRate:
		return k.Tagged("limit", key, "redis_rate")
	}
	return ""
}

// LimitWindowKey is the fixed-window counter of key for window index w
// (floor(server time / period)): prefix + "limit:{<key>}:fw:<w>", a string
// counter that expires when its window ends. The script derives it from
// LimitKey and the server time; it shares the hash tag, so it lives in the
// same Redis Cluster slot.
func LimitWindowKey(k Keyspace, key string, w int64) string {
	return LimitKey(k, LimitFixedWindow, key) + ":" + strconv.FormatInt(w, 10)
}

// LimitScriptArgs returns the ARGV every limiter script takes: limit,
// period in microseconds, burst, n, and the time override in microseconds
// ("" for the server's TIME).
func LimitScriptArgs(o LimitOptions, n int64) []string {
	now := ""
	if o.Now != nil {
		now = strconv.FormatInt(o.Now().UnixMicro(), 10)
	}
	return []string{
		strconv.FormatInt(o.Limit, 10),
		strconv.FormatInt(o.Period.Microseconds(), 10),
		strconv.FormatInt(o.Burst, 10),
		strconv.FormatInt(n, 10),
		now,
	}
}

// DecodeLimitReply turns a limiter script's reply {allowed, remaining,
// retry_after_us, now_us} into a Decision.
func DecodeLimitReply(r []int64) (Decision, error) {
	if len(r) != 4 {
		return Decision{}, fmt.Errorf("limit script replied %v, want {allowed, remaining, retry_after_us, now_us}", r)
	}
	d := Decision{Allowed: r[0] == 1, Remaining: max(r[1], 0), At: time.UnixMicro(r[3])}
	switch {
	case d.Allowed:
	case r[2] < 0:
		d.RetryAfter = NoRetry
	default:
		d.RetryAfter = time.Duration(r[2]) * time.Microsecond
	}
	return d, nil
}
