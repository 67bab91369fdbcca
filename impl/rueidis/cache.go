package rueidis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/cacheaside"
	"github.com/paybench/paybench/impl/scripts"
)

// The cache scripts, shared by every Client (EVALSHA, EVAL on NOSCRIPT).
var (
	cacheSetScript    = rd.NewLuaScript(scripts.CacheSet)
	cacheUnlockScript = rd.NewLuaScript(scripts.CacheUnlock)
)

// cacheFields are the entry hash's fields, in the order reads ask for them.
var cacheFields = impl.CacheFields()

// localCacheBytes is the client-side cache of each connection of a
// client-side cache's own client (rueidis's default is 128 MiB).
const localCacheBytes = 16 << 20

// Compile-time checks.
var (
	_ impl.CacheBackend    = (*Client)(nil)
	_ impl.LocalCacheStore = (*cacheStore)(nil)
)

// Cache returns a cache with the named read strategy (one of
// impl.CacheStrategies) over this client. Zero options take their defaults
// (impl.CacheOptions.WithDefaults); Keys and Origin are required.
//
// impl.CacheClientSide reads through rueidis's server-assisted client-side
// cache (DoCache: CLIENT TRACKING ON OPTIN over RESP3). The Client's own
// connections run with DisableCache, so the strategy opens a dedicated
// rueidis client from the same options with caching on; the cache's Close
// closes it. A server without RESP3 client tracking (an embedded server)
// makes it return an error wrapping impl.ErrNotSupported.
func (c *Client) Cache(strategy string, opts impl.CacheOptions) (impl.Cache, error) {
	store := &cacheStore{rc: c.rc}
	if strategy == impl.CacheClientSide {
		opt := c.opt
		opt.DisableCache = false
		opt.CacheSizeEachConn = localCacheBytes
		rc, err := rd.NewClient(opt)
		if errors.Is(err, rd.ErrNoCache) {
			return nil, fmt.Errorf("rueidis cache %s: the server has no RESP3 client tracking (%v): %w", strategy, err, impl.ErrNotSupported)
		}
		if err != nil {
			return nil, fmt.Errorf("rueidis cache %s: open a caching client: %w", strategy, err)
		}
		store = &cacheStore{rc: rc, owned: true}
	}
	cache, err := cacheaside.New(store, strategy, opts)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("rueidis: %w", err)
	}
	return cache, nil
}

// cacheStore is impl.LocalCacheStore on rueidis. owned is set when the
// store opened its rueidis client itself (client-side) and closes it.
type cacheStore struct {
	rc    rd.Client
	owned bool
}

// Read runs HMGET, with PTTL in the same DoMulti when asked.
func (s *cacheStore) Read(ctx context.Context, key string, ttl bool) (impl.CacheEntry, error) {
	hmget := s.rc.B().Hmget().Key(key).Field(cacheFields...).Build()
	if !ttl {
		vals, err := s.rc.Do(ctx, hmget).ToArray()
		if err != nil {
			return impl.CacheEntry{}, err
		}
		return decodeEntry(vals)
	}
	resps := s.rc.DoMulti(ctx, hmget, s.rc.B().Pttl().Key(key).Build())
	vals, err := resps[0].ToArray()
	if err != nil {
		return impl.CacheEntry{}, err
	}
	ms, err := resps[1].AsInt64()
	if err != nil {
		return impl.CacheEntry{}, err
	}
	e, err := decodeEntry(vals)
	if err != nil {
		return impl.CacheEntry{}, err
	}
	e.TTL = pttl(ms)
	return e, nil
}

// ReadLocal runs HMGET through the client-side cache (DoCache), keeping the
// answer at most ttl (and never past the key's own TTL); Local reports a
// client-side hit.
func (s *cacheStore) ReadLocal(ctx context.Context, key string, ttl time.Duration) (impl.CacheEntry, error) {
	resp := s.rc.DoCache(ctx, s.rc.B().Hmget().Key(key).Field(cacheFields...).Cache(), ttl)
	vals, err := resp.ToArray()
	if err != nil {
		return impl.CacheEntry{}, err
	}
	e, err := decodeEntry(vals)
	if err != nil {
		return impl.CacheEntry{}, err
	}
	e.Local = resp.IsCacheHit()
	return e, nil
}

// pttl turns a PTTL reply into a duration; -1 (no expiry) stays negative.
func pttl(ms int64) time.Duration {
	if ms < 0 {
		return time.Duration(ms)
	}
	return time.Duration(ms) * time.Millisecond
}

// decodeEntry turns an HMGET v d c reply into an entry; a nil version is
// a missing key.
func decodeEntry(vals []rd.RedisMessage) (impl.CacheEntry, error) {
	if len(vals) != len(cacheFields) {
		return impl.CacheEntry{}, fmt.Errorf("HMGET replied %d values, want %d", len(vals), len(cacheFields))
	}
	if vals[0].IsNil() {
		return impl.CacheEntry{}, nil
	}
	var str [3]string
	for i := range vals {
		if vals[i].IsNil() {
			continue
		}
		s, err := vals[i].ToString()
		if err != nil {
			return impl.CacheEntry{}, fmt.Errorf("cache field %s: %w", cacheFields[i], err)
		}
		str[i] = s
	}
	return impl.ParseCacheEntry(str[0], str[1], str[2])
}

// Write stores the entry with HSET and PEXPIRE in one MULTI/EXEC.
func (s *cacheStore) Write(ctx context.Context, key string, e impl.CacheEntry, ttl time.Duration) error {
	v, d, c := e.Encode()
	resps := s.rc.DoMulti(ctx,
		s.rc.B().Multi().Build(),
		s.rc.B().Hset().Key(key).FieldValue().FieldValue("v", v).FieldValue("d", d).FieldValue("c", c).Build(),
		s.rc.B().Pexpire().Key(key).Milliseconds(ttl.Milliseconds()).Build(),
		s.rc.B().Exec().Build())
	for _, r := range resps[:len(resps)-1] {
		if err := r.Error(); err != nil {
			return err
		}
	}
	replies, err := resps[len(resps)-1].ToArray()
	if err != nil {
		return fmt.Errorf("EXEC: %w", err)
	}
	for _, m := range replies {
		if err := m.Error(); err != nil {
			return err
		}
	}
	return nil
}

// WriteVersioned runs scripts.CacheSet in fill mode.
func (s *cacheStore) WriteVersioned(ctx context.Context, key, floorKey string, e impl.CacheEntry, ttl time.Duration) (bool, error) {
	v, d, c := e.Encode()
	res, err := cacheSetScript.Exec(ctx, s.rc, []string{key, floorKey},
		[]string{"fill", v, d, c, strconv.FormatInt(ttl.Milliseconds(), 10)}).AsIntSlice()
	if err != nil {
		return false, err
	}
	if len(res) != 2 {
		return false, fmt.Errorf("cache_set replied %v, want {written, version}", res)
	}
	return res[0] == 1, nil
}

// InvalidateVersioned runs scripts.CacheSet in invalidate mode.
func (s *cacheStore) InvalidateVersioned(ctx context.Context, key, floorKey string, version int64, floorTTL time.Duration) error {
	return cacheSetScript.Exec(ctx, s.rc, []string{key, floorKey},
		[]string{"invalidate", strconv.FormatInt(version, 10), strconv.FormatInt(floorTTL.Milliseconds(), 10)}).Error()
}

// Delete runs DEL.
func (s *cacheStore) Delete(ctx context.Context, key string) error {
	return s.rc.Do(ctx, s.rc.B().Del().Key(key).Build()).Error()
}

// TryLock runs SET key token NX PX ttl; a nil reply means another holder.
func (s *cacheStore) TryLock(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	err := s.rc.Do(ctx, s.rc.B().Set().Key(key).Value(token).Nx().PxMilliseconds(ttl.Milliseconds()).Build()).Error()
	if rd.IsRedisNil(err) {
		return false, nil
	}
	return err == nil, err
}

// Unlock runs scripts.CacheUnlock.
func (s *cacheStore) Unlock(ctx context.Context, key, token string) error {
	return cacheUnlockScript.Exec(ctx, s.rc, []string{key}, []string{token}).Error()
}

// Close closes the store's own client (client-side strategy only).
func (s *cacheStore) Close() error {
	if s.owned {
		s.rc.Close()
	}
	return nil
}
