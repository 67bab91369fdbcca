package goredis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Compile-time checks.
var (
	_ impl.Limiter         = (*redisRate)(nil)
	_ impl.LibrarySettings = (*redisRate)(nil)
)

// redisRate is github.com/go-redis/redis_rate/v10: GCRA in one script,
// redis_rate.Limit{Rate: opts.Limit, Burst: opts.Burst, Period:
// opts.Period} (PerSecond(n) is the same with a 1 s period and a burst of
// n). The library reaches Redis through rateRediser, which keeps its key
// under the run's prefix and notes the server time of each decision.
type redisRate struct {
	lim   *redis_rate.Limiter
	opts  impl.LimitOptions
	limit redis_rate.Limit
}

func newRedisRate(rdb redis.UniversalClient, opts impl.LimitOptions) (impl.Limiter, error) {
	if opts.Now != nil {
		return nil, fmt.Errorf("goredis: limiter %s: a test clock (LimitOptions.Now): %w: the library reads the server's TIME", impl.LimitRedisRate, impl.ErrNotSupported)
	}
	if opts.Limit > int64(^uint32(0)>>1) || opts.Burst > int64(^uint32(0)>>1) {
		return nil, fmt.Errorf("goredis: limiter %s: %w: limit %d, burst %d", impl.LimitRedisRate, impl.ErrInvalidLimit, opts.Limit, opts.Burst)
	}
	return &redisRate{
		lim:   redis_rate.NewLimiter(&rateRediser{rdb: rdb, keys: opts.Keys}),
		opts:  opts,
		limit: redis_rate.Limit{Rate: int(opts.Limit), Burst: int(opts.Burst), Period: opts.Period},
	}, nil
}

// decisionState is where rateRediser puts the key's value read right
// after the library's script, in the same MULTI: the theoretical arrival
// time the decision left.
type decisionState struct{}

// rateState is what rateRediser saw of one decision: the key's value
// right after the script (the theoretical arrival time the decision
// left) and the script's reset_after, both as the server wrote them.
type rateState struct{ tat, resetAfter string }

// redisRateNow recovers the server time the library's script decided at:
// it returns reset_after = TAT - now, and the key holds the TAT (the new
// one after an admission, the unchanged one after a refusal), so now =
// TAT - reset_after, in the script's own frame (seconds since
// 2017-01-01), rounded to the microsecond the script read from TIME.
func redisRateNow(tat, resetAfter string) (time.Time, error) {
	t, err := strconv.ParseFloat(tat, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("decision time: state %q: %w", tat, err)
	}
	r, err := strconv.ParseFloat(resetAfter, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("decision time: reset_after %q: %w", resetAfter, err)
	}
	us := int64(math.Round((t - r) * 1e6))
	return time.UnixMicro(us + impl.RedisRateEpoch*1_000_000), nil
}

// Allow runs Limiter.AllowN(ctx, key, limit, n).
func (l *redisRate) Allow(ctx context.Context, key string, n int64) (impl.Decision, error) {
	if err := impl.ValidateCost(n); err != nil {
		return impl.Decision{}, limitErr(impl.LimitRedisRate, key, err)
	}
	st := new(rateState)
	ctx = context.WithValue(ctx, decisionState{}, st)
	res, err := l.lim.AllowN(ctx, impl.LimitKey(l.opts.Keys, impl.LimitRedisRate, key), l.limit, int(n))
	if err != nil {
		return impl.Decision{}, limitErr(impl.LimitRedisRate, key, err)
	}
	// A refusal on a key that holds no state (more units than the burst)
	// leaves nothing to recover the decision's time from: At stays zero.
	var at time.Time
	if st.tat != "" {
		if at, err = redisRateNow(st.tat, st.resetAfter); err != nil {
			return impl.Decision{}, limitErr(impl.LimitRedisRate, key, err)
		}
	}
	d := impl.Decision{Allowed: res.Allowed > 0, Remaining: max(int64(res.Remaining), 0), At: at}
	switch {
	case d.Allowed:
	case n > l.opts.Burst:
		d.RetryAfter = impl.NoRetry
	default:
		d.RetryAfter = max(res.RetryAfter, 0)
	}
	return d, nil
}

// LibrarySettings implements impl.LibrarySettings.
func (l *redisRate) LibrarySettings() map[string]string {
	return map[string]string{
		"library": "github.com/go-redis/redis_rate/v10 " + impl.ModuleVersion("github.com/go-redis/redis_rate/v10"),
		"limit":   fmt.Sprintf("redis_rate.Limit{Rate: %d, Burst: %d, Period: %s}", l.limit.Rate, l.limit.Burst, l.limit.Period),
		"promise": "GCRA: burst + rate·t (emission interval period/rate)",
		"key":     "the library's \"rate:\" prefix dropped to stay under the run prefix; the script is the library's",
	}
}

// rateRediser is the client redis_rate is given. It passes every call to
// rdb unchanged but for two things: the key loses the library's fixed
// "rate:" prefix (it must stay under the run's prefix: paybench touches
// no other key), and a script that decides (EVAL, EVALSHA) runs in a
// MULTI with a GET of its key after it, so that the harness knows the
// server time the decision was taken at (redisRateNow; the library does
// not return it) without another round trip.
type rateRediser struct {
	rdb  redis.UniversalClient
	keys impl.Keyspace
}

const rateLibPrefix = "rate:"

// key maps the library's key back to the run's.
func (r *rateRediser) key(keys []string) ([]string, error) {
	out := make([]string, len(keys))
	for i, k := range keys {
		k, ok := strings.CutPrefix(k, rateLibPrefix)
		if !ok || !strings.HasPrefix(k, r.keys.Prefix()) {
			return nil, fmt.Errorf("redis_rate key %q is not %q + a key under the run's prefix", keys[i], rateLibPrefix)
		}
		out[i] = k
	}
	return out, nil
}

func errCmd(ctx context.Context, err error) *redis.Cmd {
	c := redis.NewCmd(ctx)
	c.SetErr(err)
	return c
}

// timed runs one script call in a MULTI followed by TIME and notes the
// time in ctx's decisionTime.
func (r *rateRediser) timed(ctx context.Context, keys []string, call func(p redis.Pipeliner, keys []string) *redis.Cmd) *redis.Cmd {
	keys, err := r.key(keys)
	if err != nil {
		return errCmd(ctx, err)
	}
	var cmd *redis.Cmd
	var state *redis.StringCmd
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cmd = call(p, keys)
		if len(keys) > 0 {
			state = p.Get(ctx, keys[0])
		}
		return nil
	})
	if cmd == nil {
		return errCmd(ctx, err)
	}
	if st, ok := ctx.Value(decisionState{}).(*rateState); ok && state != nil && state.Err() == nil && cmd.Err() == nil {
		st.tat = state.Val()
		if vs, ok := cmd.Val().([]any); ok && len(vs) == 4 {
			st.resetAfter, _ = vs[3].(string)
		}
	}
	return cmd
}

// Eval implements the library's client interface.
func (r *rateRediser) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.timed(ctx, keys, func(p redis.Pipeliner, keys []string) *redis.Cmd { return p.Eval(ctx, script, keys, args...) })
}

// EvalSha implements the library's client interface.
func (r *rateRediser) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return r.timed(ctx, keys, func(p redis.Pipeliner, keys []string) *redis.Cmd { return p.EvalSha(ctx, sha1, keys, args...) })
}

// EvalRO implements the library's client interface.
func (r *rateRediser) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	keys, err := r.key(keys)
	if err != nil {
		return errCmd(ctx, err)
	}
	return r.rdb.EvalRO(ctx, script, keys, args...)
}

// EvalShaRO implements the library's client interface.
func (r *rateRediser) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	keys, err := r.key(keys)
	if err != nil {
		return errCmd(ctx, err)
	}
	return r.rdb.EvalShaRO(ctx, sha1, keys, args...)
}

// ScriptExists implements the library's client interface.
func (r *rateRediser) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return r.rdb.ScriptExists(ctx, hashes...)
}

// ScriptLoad implements the library's client interface.
func (r *rateRediser) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return r.rdb.ScriptLoad(ctx, script)
}

// Del implements the library's client interface (Limiter.Reset).
func (r *rateRediser) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	keys, err := r.key(keys)
	if err != nil {
		c := redis.NewIntCmd(ctx)
		c.SetErr(err)
		return c
	}
	return r.rdb.Del(ctx, keys...)
}
