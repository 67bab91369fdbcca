package goredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The limiter scripts, shared by every Client (EVALSHA, EVAL fallback).
var (
	limitFixedWindowScript   = redis.NewScript(scripts.LimitFixedWindow)
	limitSlidingLogScript    = redis.NewScript(scripts.LimitSlidingLog)
	limitSlidingWindowScript = redis.NewScript(scripts.LimitSlidingWindow)
	limitGCRAScript          = redis.NewScript(scripts.LimitGCRA)
)

// Compile-time checks.
var (
	_ impl.LimitBackend = (*Client)(nil)
	_ impl.Limiter      = (*naiveLimiter)(nil)
	_ impl.Limiter      = (*scriptLimiter)(nil)
)

// Limiter returns the named limiter strategy (one of
// impl.LimitStrategies). Zero options take their defaults
// (impl.LimitOptions.WithDefaults); opts.Keys is required.
func (c *Client) Limiter(strategy string, opts impl.LimitOptions) (impl.Limiter, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("goredis: limiter %s: %w", strategy, err)
	}
	var script *redis.Script
	switch strategy {
	case impl.LimitNaive:
		return &naiveLimiter{rdb: c.rdb, opts: opts}, nil
	case impl.LimitFixedWindow:
		script = limitFixedWindowScript
	case impl.LimitSlidingLog:
		script = limitSlidingLogScript
	case impl.LimitSlidingWindow:
		script = limitSlidingWindowScript
	case impl.LimitGCRA:
		script = limitGCRAScript
	case impl.LimitRedisRate:
		return newRedisRate(c.rdb, opts)
	default:
		return nil, impl.StrategyError("limit", strategy, impl.AllLimitStrategies())
	}
	return &scriptLimiter{rdb: c.rdb, opts: opts, name: strategy, script: script}, nil
}

// naiveLimiter is the seed's rate_limit: GET the counter, compare in the
// client, SETEX count+n with the whole period. Two requests that read the
// same count both pass (over-admission), and every admission pushes the
// expiry a full period out, so the window restarts with each admission.
type naiveLimiter struct {
	rdb  redis.UniversalClient
	opts impl.LimitOptions
}

// Allow runs GET, compares, and on admission SETs the new count with the
// period as its expiry (SETEX, with go-redis's millisecond PX form for
// sub-second periods).
func (l *naiveLimiter) Allow(ctx context.Context, key string, n int64) (impl.Decision, error) {
	if err := impl.ValidateCost(n); err != nil {
		return impl.Decision{}, limitErr(impl.LimitNaive, key, err)
	}
	k := impl.LimitKey(l.opts.Keys, impl.LimitNaive, key)
	cur, err := l.rdb.Get(ctx, k).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return impl.Decision{}, limitErr(impl.LimitNaive, key, err)
	}
	if n > l.opts.Limit {
		return impl.Decision{Remaining: max(l.opts.Limit-cur, 0), RetryAfter: impl.NoRetry}, nil
	}
	if cur+n > l.opts.Limit {
		return impl.Decision{Remaining: max(l.opts.Limit-cur, 0), RetryAfter: l.opts.Period}, nil
	}
	if err := l.rdb.Set(ctx, k, cur+n, l.opts.Period).Err(); err != nil {
		return impl.Decision{}, limitErr(impl.LimitNaive, key, err)
	}
	return impl.Decision{Allowed: true, Remaining: l.opts.Limit - cur - n}, nil
}

// scriptLimiter runs one of the limiter scripts: the decision and the count
// happen atomically on the server, with the server's clock.
type scriptLimiter struct {
	rdb    redis.UniversalClient
	opts   impl.LimitOptions
	name   string
	script *redis.Script
}

// Allow runs the strategy's script.
func (l *scriptLimiter) Allow(ctx context.Context, key string, n int64) (impl.Decision, error) {
	if err := impl.ValidateCost(n); err != nil {
		return impl.Decision{}, limitErr(l.name, key, err)
	}
	keys := []string{impl.LimitKey(l.opts.Keys, l.name, key)}
	res, err := l.script.Run(ctx, l.rdb, keys, limitArgs(l.opts, n)...).Int64Slice()
	if err != nil {
		return impl.Decision{}, limitErr(l.name, key, err)
	}
	d, err := impl.DecodeLimitReply(res)
	if err != nil {
		return impl.Decision{}, limitErr(l.name, key, err)
	}
	return d, nil
}

func limitErr(strategy, key string, err error) error {
	return fmt.Errorf("goredis limit %s: allow %s: %w", strategy, strconv.Quote(key), err)
}

// limitArgs returns impl.LimitScriptArgs as go-redis's variadic ...any.
func limitArgs(o impl.LimitOptions, n int64) []any {
	ss := impl.LimitScriptArgs(o, n)
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
