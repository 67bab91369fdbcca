package impl

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
)

// Library strategies: the lock and limiter libraries applications take
// off the shelf, judged by the same scenarios as paybench's own
// strategies. Each exists only on the backend whose client library it is
// built on; the other backend refuses it with ErrNotSupported and the
// reason (LibraryError).
const (
	// LockRedsync is github.com/go-redsync/redsync/v4 on go-redis v9
	// pools: the Redlock algorithm, one pool per independent server (one
	// pool on a single server), with the library's defaults (8 s expiry,
	// 32 tries 50-250 ms apart, drift factor 0.01) but for the expiry,
	// which is the scenario's TTL.
	LockRedsync = "redsync"
	// LockRedislock is github.com/bsm/redislock on go-redis v9: SET NX PX
	// with a random token, compare-and-delete release, compare-and-pexpire
	// Refresh; no retry unless a RetryStrategy is given.
	LockRedislock = "redislock"
	// LockRueidislock is github.com/redis/rueidis/rueidislock on rueidis:
	// a lock held while a context lives, its keys extended in the
	// background every ExtendInterval and watched with client-side caching.
	LockRueidislock = "rueidislock"
	// LimitRedisRate is github.com/go-redis/redis_rate/v10 on go-redis v9:
	// GCRA with a rate, a period and a burst.
	LimitRedisRate = "redis_rate"
)

// LockLibraryStrategies lists the lock library strategies in display
// order.
func LockLibraryStrategies() []string {
	return []string{LockRedsync, LockRedislock, LockRueidislock}
}

// LimitLibraryStrategies lists the limiter library strategies.
func LimitLibraryStrategies() []string { return []string{LimitRedisRate} }

// AllLockStrategies lists paybench's lock strategies, then the libraries'.
func AllLockStrategies() []string {
	return append(LockStrategies(), LockLibraryStrategies()...)
}

// AllLimitStrategies lists paybench's limiter strategies, then the
// libraries'.
func AllLimitStrategies() []string {
	return append(LimitStrategies(), LimitLibraryStrategies()...)
}

// Library is what paybench knows of one library strategy.
type Library struct {
	// Strategy is the strategy's name (LockRedsync, ...).
	Strategy string
	// Module is the Go module the library is in.
	Module string
	// Package is the import path of the package used.
	Package string
	// Backend is the backend whose client the library is built on.
	Backend string
}

// Libraries lists the library strategies paybench builds in.
func Libraries() []Library {
	return []Library{
		{LockRedsync, "github.com/go-redsync/redsync/v4", "github.com/go-redsync/redsync/v4", GoRedis},
		{LockRedislock, "github.com/bsm/redislock", "github.com/bsm/redislock", GoRedis},
		{LockRueidislock, "github.com/redis/rueidis", "github.com/redis/rueidis/rueidislock", Rueidis},
		{LimitRedisRate, "github.com/go-redis/redis_rate/v10", "github.com/go-redis/redis_rate/v10", GoRedis},
	}
}

// LibraryOf returns the library strategy named strategy.
func LibraryOf(strategy string) (Library, bool) {
	i := slices.IndexFunc(Libraries(), func(l Library) bool { return l.Strategy == strategy })
	if i < 0 {
		return Library{}, false
	}
	return Libraries()[i], true
}

// LibraryError is the error a backend returns for a library strategy
// built on another backend's client: it wraps ErrNotSupported and says
// which client the library needs. It returns nil when strategy is not a
// library strategy, or is one of backend's own.
func LibraryError(family, backend, strategy string) error {
	lib, ok := LibraryOf(strategy)
	if !ok || lib.Backend == backend {
		return nil
	}
	return fmt.Errorf("%s: %s %s: %s is built on the %s client: %w", backend, family, strategy, lib.Package, lib.Backend, ErrNotSupported)
}

// LibrarySettings is implemented by library strategies: the settings
// that shape the library's behaviour (TTL, retries, drift factor,
// extend policy, ...), the values in effect, for the cell's params.
type LibrarySettings interface {
	// LibrarySettings returns the settings, keyed by name.
	LibrarySettings() map[string]string
}

// LockKeyer is implemented by lock strategies whose lock does not live in
// LockKey(keys, name) (rueidislock names its own keys). Scenarios that
// read the lock's key back ask LockKeyOf. An empty key means LockKey's.
type LockKeyer interface {
	// LockKey returns the key holding the lock name on the first (or
	// only) server.
	LockKey(name string) string
}

// LockKeyOf returns the key holding lock name for l: l's own (LockKeyer),
// else LockKey(k, name).
func LockKeyOf(l Locker, k Keyspace, name string) string {
	if lk, ok := l.(LockKeyer); ok {
		if key := lk.LockKey(name); key != "" {
			return key
		}
	}
	return LockKey(k, name)
}

// ModuleVersion returns the version of module path built into the
// running binary ("(unknown)" when the build carries no module
// information).
func ModuleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				if m.Replace != nil && m.Replace.Version != "" {
					return m.Replace.Version
				}
				return m.Version
			}
		}
	}
	return "(unknown)"
}

// ContextEnded returns ctx's error, or context.DeadlineExceeded when ctx's
// deadline has passed but ctx has not noticed yet (a library that turns
// the deadline into a socket deadline may report the time-out first).
func ContextEnded(ctx context.Context) error { return ctxEnded(ctx) }

// RedisRateEpoch is the library's time origin, 2017-01-01 UTC: its
// theoretical arrival times are seconds since then.
const RedisRateEpoch = 1483228800

// RedisRateTAT converts the value redis_rate stores (seconds since
// 2017-01-01 UTC, a float) to Unix microseconds.
func RedisRateTAT(v string) (int64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("redis_rate state %q: %w", v, err)
	}
	return int64(math.Round(f*1e6)) + RedisRateEpoch*1_000_000, nil
}

// LibrarySettings passes the wrapped locker's library settings on (nil
// when it is none of the libraries'), noting paybench's watchdog.
func (w *watchdogLocker) LibrarySettings() map[string]string {
	ls, ok := w.Locker.(LibrarySettings)
	if !ok {
		return nil
	}
	m := ls.LibrarySettings()
	m["watchdog"] = "paybench's (--watchdog): the library's refresh every " + w.every.String()
	return m
}

// LockKey passes the wrapped locker's lock key on (LockKeyer); "" when
// it has none of its own.
func (w *watchdogLocker) LockKey(name string) string {
	if lk, ok := w.Locker.(LockKeyer); ok {
		return lk.LockKey(name)
	}
	return ""
}
