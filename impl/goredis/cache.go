package goredis

import (
	"context"
	"fmt"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/cacheaside"
	"github.com/paybench/paybench/impl/scripts"
)

// The cache scripts, shared by every Client (EVALSHA, EVAL on NOSCRIPT).
var (
	cacheSetScript    = redis.NewScript(scripts.CacheSet)
	cacheUnlockScript = redis.NewScript(scripts.CacheUnlock)
)

// cacheFields are the entry hash's fields, in the order reads ask for them.
var cacheFields = impl.CacheFields()

// Compile-time checks.
var (
	_ impl.CacheBackend = (*Client)(nil)
	_ impl.CacheStore   = cacheStore{}
)

// Cache returns a cache with the named read strategy (one of
// impl.CacheStrategies) over this client. go-redis has no server-assisted
// client-side caching, so impl.CacheClientSide returns an error wrapping
// impl.ErrNotSupported. Zero options take their defaults
// (impl.CacheOptions.WithDefaults); Keys and Origin are required.
func (c *Client) Cache(strategy string, opts impl.CacheOptions) (impl.Cache, error) {
	if strategy == impl.CacheClientSide {
		return nil, fmt.Errorf("goredis cache %s: server-assisted client-side caching (RESP3 tracking): %w", strategy, impl.ErrNotSupported)
	}
	cache, err := cacheaside.New(cacheStore{rdb: c.rdb}, strategy, opts)
	if err != nil {
		return nil, fmt.Errorf("goredis: %w", err)
	}
	return cache, nil
}

// cacheStore is impl.CacheStore on go-redis.
type cacheStore struct{ rdb redis.UniversalClient }

// Read runs HMGET, and PTTL in the same pipeline when asked.
func (s cacheStore) Read(ctx context.Context, key string, ttl bool) (impl.CacheEntry, error) {
	if !ttl {
		vals, err := s.rdb.HMGet(ctx, key, cacheFields...).Result()
		if err != nil {
			return impl.CacheEntry{}, err
		}
		return decodeEntry(vals)
	}
	var (
		hmget *redis.SliceCmd
		pttl  *redis.DurationCmd
	)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		hmget = p.HMGet(ctx, key, cacheFields...)
		pttl = p.PTTL(ctx, key)
		return nil
	}); err != nil {
		return impl.CacheEntry{}, err
	}
	e, err := decodeEntry(hmget.Val())
	if err != nil {
		return impl.CacheEntry{}, err
	}
	e.TTL = pttl.Val()
	return e, nil
}

// decodeEntry turns an HMGET v d c reply into an entry; a nil version is
// a missing key.
func decodeEntry(vals []any) (impl.CacheEntry, error) {
	if len(vals) != len(cacheFields) {
		return impl.CacheEntry{}, fmt.Errorf("HMGET replied %d values, want %d", len(vals), len(cacheFields))
	}
	if vals[0] == nil {
		return impl.CacheEntry{}, nil
	}
	var str [3]string
	for i, v := range vals {
		if v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return impl.CacheEntry{}, fmt.Errorf("cache field %s holds %T", cacheFields[i], v)
		}
		str[i] = s
	}
	return impl.ParseCacheEntry(str[0], str[1], str[2])
}

// Write stores the entry with HSET and PEXPIRE in one MULTI/EXEC.
func (s cacheStore) Write(ctx context.Context, key string, e impl.CacheEntry, ttl time.Duration) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		v, d, c := e.Encode()
		p.HSet(ctx, key, "v", v, "d", d, "c", c)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	return err
}

// WriteVersioned runs scripts.CacheSet in fill mode.
func (s cacheStore) WriteVersioned(ctx context.Context, key, floorKey string, e impl.CacheEntry, ttl time.Duration) (bool, error) {
	v, d, c := e.Encode()
	res, err := cacheSetScript.Run(ctx, s.rdb, []string{key, floorKey}, "fill", v, d, c, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return false, err
	}
	if len(res) != 2 {
		return false, fmt.Errorf("cache_set replied %v, want {written, version}", res)
	}
	return res[0] == 1, nil
}

// InvalidateVersioned runs scripts.CacheSet in invalidate mode.
func (s cacheStore) InvalidateVersioned(ctx context.Context, key, floorKey string, version int64, floorTTL time.Duration) error {
	return cacheSetScript.Run(ctx, s.rdb, []string{key, floorKey}, "invalidate", version, floorTTL.Milliseconds()).Err()
}

// Delete runs DEL.
func (s cacheStore) Delete(ctx context.Context, key string) error {
	return s.rdb.Del(ctx, key).Err()
}

// TryLock runs SET key token NX PX ttl.
func (s cacheStore) TryLock(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, key, token, ttl).Result()
}

// Unlock runs scripts.CacheUnlock.
func (s cacheStore) Unlock(ctx context.Context, key, token string) error {
	return cacheUnlockScript.Run(ctx, s.rdb, []string{key}, token).Err()
}
