package rueidis

import (
	"context"
	"fmt"
	"strconv"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// The limiter scripts, shared by every Client (EVALSHA, EVAL fallback).
var (
	limitFixedWindowScript   = rd.NewLuaScript(scripts.LimitFixedWindow)
	limitSlidingLogScript    = rd.NewLuaScript(scripts.LimitSlidingLog)
	limitSlidingWindowScript = rd.NewLuaScript(scripts.LimitSlidingWindow)
	limitGCRAScript          = rd.NewLuaScript(scripts.LimitGCRA)
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
		return nil, fmt.Errorf("rueidis: limiter %s: %w", strategy, err)
	}
	var script *rd.Lua
	switch strategy {
	case impl.LimitNaive:
		return &naiveLimiter{rc: c.rc, opts: opts}, nil
	case impl.LimitFixedWindow:
		script = limitFixedWindowScript
	case impl.LimitSlidingLog:
		script = limitSlidingLogScript
	case impl.LimitSlidingWindow:
		script = limitSlidingWindowScript
	case impl.LimitGCRA:
		script = limitGCRAScript
	default:
		if err := impl.LibraryError("limit", impl.Rueidis, strategy); err != nil {
			return nil, err
		}
		return nil, impl.StrategyError("limit", strategy, impl.AllLimitStrategies())
	}
	return &scriptLimiter{rc: c.rc, opts: opts, name: strategy, script: script}, nil
}

// naiveLimiter is the seed's rate_limit: GET the counter, compare in the
// client, SETEX count+n with the whole period. Two requests that read the
// same count both pass (over-admission), and every admission pushes the
// expiry a full period out, so the window restarts with each admission.
type naiveLimiter struct {
	rc   rd.Client
	opts impl.LimitOptions
}

// Allow runs GET, compares, and on admission SETs the new count with the
// period as its expiry (SETEX in its millisecond form, SET ... PX, so that
// sub-second periods work).
func (l *naiveLimiter) Allow(ctx context.Context, key string, n int64) (impl.Decision, error) {
	if err := impl.ValidateCost(n); err != nil {
		return impl.Decision{}, limitErr(impl.LimitNaive, key, err)
	}
	k := impl.LimitKey(l.opts.Keys, impl.LimitNaive, key)
	cur, err := getInt(ctx, l.rc, k)
	if err != nil {
		return impl.Decision{}, limitErr(impl.LimitNaive, key, err)
	}
	if n > l.opts.Limit {
		return impl.Decision{Remaining: max(l.opts.Limit-cur, 0), RetryAfter: impl.NoRetry}, nil
	}
	if cur+n > l.opts.Limit {
		return impl.Decision{Remaining: max(l.opts.Limit-cur, 0), RetryAfter: l.opts.Period}, nil
	}
	set := l.rc.B().Set().Key(k).Value(strconv.FormatInt(cur+n, 10)).Px(l.opts.Period).Build()
	if err := l.rc.Do(ctx, set).Error(); err != nil {
		return impl.Decision{}, limitErr(impl.LimitNaive, key, err)
	}
	return impl.Decision{Allowed: true, Remaining: l.opts.Limit - cur - n}, nil
}

// scriptLimiter runs one of the limiter scripts: the decision and the count
// happen atomically on the server, with the server's clock.
type scriptLimiter struct {
	rc     rd.Client
	opts   impl.LimitOptions
	name   string
	script *rd.Lua
}

// Allow runs the strategy's script.
func (l *scriptLimiter) Allow(ctx context.Context, key string, n int64) (impl.Decision, error) {
	if err := impl.ValidateCost(n); err != nil {
		return impl.Decision{}, limitErr(l.name, key, err)
	}
	keys := []string{impl.LimitKey(l.opts.Keys, l.name, key)}
	res, err := l.script.Exec(ctx, l.rc, keys, impl.LimitScriptArgs(l.opts, n)).AsIntSlice()
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
	return fmt.Errorf("rueidis limit %s: allow %s: %w", strategy, strconv.Quote(key), err)
}
