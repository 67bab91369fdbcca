// Package cacheaside is the one implementation of the cache family
// (impl.Cache): every read strategy and write mode of cache-aside, written
// once over an impl.CacheStore, the few Redis commands each backend
// implements with its own library. Both backends therefore behave
// identically and differ only in how they talk to Redis.
package cacheaside

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/paybench/paybench/impl"
)

// flightTimeout bounds a load shared by several callers (singleflight): it
// runs detached from the first caller's context, so that one caller giving
// up does not fail the others.
const flightTimeout = 30 * time.Second

// cleanupTimeout bounds releasing a rebuild lock after the caller's
// context ended.
const cleanupTimeout = 3 * time.Second

// New returns the cache with the named read strategy over store. A
// store that implements io.Closer is closed by the cache's Close. The
// client-side strategy needs an impl.LocalCacheStore; with any other store it
// returns an error wrapping impl.ErrNotSupported.
func New(store impl.CacheStore, strategy string, opts impl.CacheOptions) (impl.Cache, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("cache %s: %w", strategy, err)
	}
	c := &cache{store: store, strategy: strategy, opts: opts}
	switch strategy {
	case impl.CacheNaive, impl.CacheSingleflight, impl.CacheLock, impl.CacheEarly:
	case impl.CacheClientSide:
		local, ok := store.(impl.LocalCacheStore)
		if !ok {
			return nil, fmt.Errorf("cache %s: client-side caching: %w", strategy, impl.ErrNotSupported)
		}
		c.local = local
	default:
		return nil, impl.StrategyError("cache", strategy, impl.CacheStrategies())
	}
	if store == nil {
		return nil, fmt.Errorf("cache %s: no CacheStore", strategy)
	}
	return c, nil
}

// cache implements every read strategy over an impl.CacheStore.
type cache struct {
	store    impl.CacheStore
	local    impl.LocalCacheStore // client-side only
	strategy string
	opts     impl.CacheOptions
	flights  singleflight.Group
}

func (c *cache) errorf(op, id string, err error) error {
	return fmt.Errorf("cache %s: %s %q: %w", c.strategy, op, id, err)
}

// Get implements impl.Cache.
func (c *cache) Get(ctx context.Context, id string) (impl.CacheRead, error) {
	var (
		r   impl.CacheRead
		err error
	)
	switch c.strategy {
	case impl.CacheNaive:
		r, err = c.getNaive(ctx, id)
	case impl.CacheSingleflight:
		r, err = c.getSingleflight(ctx, id, false)
	case impl.CacheClientSide:
		r, err = c.getSingleflight(ctx, id, true)
	case impl.CacheLock:
		r, err = c.getLock(ctx, id)
	case impl.CacheEarly:
		r, err = c.getEarly(ctx, id)
	}
	if err != nil {
		return impl.CacheRead{}, c.errorf("get", id, err)
	}
	return r, nil
}

// Update implements Cache: the origin first, then the invalidation.
func (c *cache) Update(ctx context.Context, id, value string) (impl.Record, error) {
	rec, err := c.opts.Origin.Store(ctx, id, value)
	if err != nil {
		return impl.Record{}, c.errorf("update", id, err)
	}
	key := impl.CacheKey(c.opts.Keys, id)
	switch c.opts.Write {
	case impl.CacheWriteVersioned:
		err = c.store.InvalidateVersioned(ctx, key, impl.CacheVersionKey(c.opts.Keys, id), rec.Version, c.opts.VersionTTL)
	default:
		err = c.store.Delete(ctx, key)
	}
	if err != nil {
		return rec, c.errorf("update", id, fmt.Errorf("invalidate after writing version %d: %w", rec.Version, err))
	}
	return rec, nil
}

// Close implements impl.Cache.
func (c *cache) Close() error {
	if cl, ok := c.store.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// entryTTL is the TTL entries are written with: TTL, plus StaleFor for the
// lock strategy, which serves them stale that much longer.
func (c *cache) entryTTL() time.Duration {
	if c.strategy == impl.CacheLock {
		return c.opts.TTL + c.opts.StaleFor
	}
	return c.opts.TTL
}

// fresh reports whether a usable entry read with its TTL is still fresh.
func (c *cache) fresh(e impl.CacheEntry) bool {
	if !usable(e) {
		return false
	}
	if e.TTL < 0 { // no expiry: someone wrote it by hand
		return true
	}
	if c.strategy == impl.CacheLock {
		return e.TTL > c.opts.StaleFor
	}
	return e.TTL > 0
}

func read(e impl.CacheEntry, src impl.CacheSource) impl.CacheRead {
	return impl.CacheRead{Record: impl.Record{Version: e.Version, Value: e.Value}, Source: src}
}

// loadAndFill loads id from the origin and writes it to the cache as the
// write mode says.
func (c *cache) loadAndFill(ctx context.Context, id, key string) (impl.Record, error) {
	begin := time.Now()
	rec, err := c.opts.Origin.Load(ctx, id)
	if err != nil {
		return impl.Record{}, fmt.Errorf("load from origin: %w", err)
	}
	e := impl.CacheEntry{Version: rec.Version, Value: rec.Value, Cost: time.Since(begin)}
	if c.opts.Write == impl.CacheWriteVersioned {
		_, err = c.store.WriteVersioned(ctx, key, impl.CacheVersionKey(c.opts.Keys, id), e, c.entryTTL())
	} else {
		err = c.store.Write(ctx, key, e, c.entryTTL())
	}
	if err != nil {
		return rec, fmt.Errorf("fill the cache with version %d: %w", rec.Version, err)
	}
	return rec, nil
}

func withID(r impl.CacheRead, id string) impl.CacheRead {
	r.ID = id
	return r
}

// getNaive: read; on a miss load and fill.
func (c *cache) getNaive(ctx context.Context, id string) (impl.CacheRead, error) {
	key := impl.CacheKey(c.opts.Keys, id)
	e, err := c.store.Read(ctx, key, false)
	if err != nil {
		return impl.CacheRead{}, err
	}
	if usable(e) {
		return withID(read(e, impl.FromRedis), id), nil
	}
	rec, err := c.loadAndFill(ctx, id, key)
	if err != nil {
		return impl.CacheRead{}, err
	}
	return impl.CacheRead{Record: rec, Source: impl.FromOrigin}, nil
}

// flightResult is what one singleflight load hands to its callers.
type flightResult struct {
	rec    impl.Record
	loaded bool
}

// getSingleflight: read (through the client-side cache when local); on a
// miss join the process's one flight for id, which reads Redis again
// (another process may have filled it meanwhile) and loads only when the
// entry is still missing.
func (c *cache) getSingleflight(ctx context.Context, id string, local bool) (impl.CacheRead, error) {
	key := impl.CacheKey(c.opts.Keys, id)
	var (
		e   impl.CacheEntry
		err error
	)
	if local {
		e, err = c.local.ReadLocal(ctx, key, c.opts.LocalTTL)
	} else {
		e, err = c.store.Read(ctx, key, false)
	}
	if err != nil {
		return impl.CacheRead{}, err
	}
	if usable(e) {
		src := impl.FromRedis
		if e.Local {
			src = impl.FromLocal
		}
		return withID(read(e, src), id), nil
	}
	leader := false
	ch := c.flights.DoChan(id, func() (any, error) {
		leader = true // runs for the first caller only; read after the channel
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
		defer cancel()
		e, err := c.store.Read(fctx, key, false) // never the local copy
		if err != nil {
			return nil, err
		}
		if usable(e) {
			return flightResult{rec: impl.Record{ID: id, Version: e.Version, Value: e.Value}}, nil
		}
		rec, err := c.loadAndFill(fctx, id, key)
		if err != nil {
			return nil, err
		}
		return flightResult{rec: rec, loaded: true}, nil
	})
	select {
	case <-ctx.Done():
		return impl.CacheRead{}, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return impl.CacheRead{}, res.Err
		}
		fr := res.Val.(flightResult)
		src := impl.FromShared
		if leader && fr.loaded {
			src = impl.FromOrigin
		}
		return impl.CacheRead{Record: fr.rec, Source: src}, nil
	}
}

// getLock: a fresh entry is a hit; a stale one is rebuilt by whoever takes
// the lock, and served stale by everyone else; with nothing to serve,
// readers rebuild or wait for the rebuild.
func (c *cache) getLock(ctx context.Context, id string) (impl.CacheRead, error) {
	key := impl.CacheKey(c.opts.Keys, id)
	e, err := c.store.Read(ctx, key, true)
	if err != nil {
		return impl.CacheRead{}, err
	}
	if c.fresh(e) {
		return withID(read(e, impl.FromRedis), id), nil
	}
	if !usable(e) {
		return c.rebuildOrWait(ctx, id, key)
	}
	r, won, err := c.rebuild(ctx, id, key, c.fresh)
	if err != nil || won {
		return r, err
	}
	return withID(read(e, impl.FromStale), id), nil
}

// getEarly: XFetch decides whether this read recomputes ahead of the
// expiry; the reader that decides claims the rebuild lock, and a reader
// that loses the claim serves the entry, which is still valid.
func (c *cache) getEarly(ctx context.Context, id string) (impl.CacheRead, error) {
	key := impl.CacheKey(c.opts.Keys, id)
	e, err := c.store.Read(ctx, key, true)
	if err != nil {
		return impl.CacheRead{}, err
	}
	if !usable(e) {
		return c.rebuildOrWait(ctx, id, key)
	}
	if !c.expireEarly(e) {
		return withID(read(e, impl.FromRedis), id), nil
	}
	// Rebuilt by someone else since we read it: its TTL went back up.
	refreshed := func(n impl.CacheEntry) bool { return usable(n) && (n.TTL < 0 || n.TTL > e.TTL) }
	r, won, err := c.rebuild(ctx, id, key, refreshed)
	if err != nil || won {
		return r, err
	}
	return withID(read(e, impl.FromRedis), id), nil
}

// expireEarly is XFetch's test: recompute now when
// -delta * beta * ln(U) >= remaining TTL, U uniform in (0, 1].
func (c *cache) expireEarly(e impl.CacheEntry) bool {
	if e.TTL < 0 {
		return false
	}
	gap := -float64(e.Cost) * c.opts.Beta * math.Log(1-rand.Float64())
	return gap >= float64(e.TTL)
}

// rebuild takes the rebuild lock; when it gets it, it reads the entry again
// (done reports whether another process rebuilt it meanwhile, and then
// that entry is served) and otherwise loads and fills. won is false when
// the lock was held by another process and nothing was done.
func (c *cache) rebuild(ctx context.Context, id, key string, done func(impl.CacheEntry) bool) (r impl.CacheRead, won bool, err error) {
	lockKey := impl.CacheLockKey(c.opts.Keys, id)
	token := strconv.FormatUint(rand.Uint64(), 36)
	won, err = c.store.TryLock(ctx, lockKey, token, c.opts.LockTTL)
	if err != nil || !won {
		return impl.CacheRead{}, false, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if uerr := c.store.Unlock(uctx, lockKey, token); uerr != nil && err == nil {
			err = fmt.Errorf("release the rebuild lock: %w", uerr)
		}
	}()
	e, err := c.store.Read(ctx, key, true)
	if err != nil {
		return impl.CacheRead{}, true, err
	}
	if done(e) {
		return withID(read(e, impl.FromShared), id), true, nil
	}
	rec, err := c.loadAndFill(ctx, id, key)
	if err != nil {
		return impl.CacheRead{}, true, err
	}
	return impl.CacheRead{Record: rec, Source: impl.FromOrigin}, true, nil
}

// rebuildOrWait serves a reader that found nothing: it rebuilds when it
// gets the lock; otherwise it polls for the entry every PollEvery and takes
// the lock when it frees up, and after LockWait it loads on its own (the
// documented bound: a rebuild slower than LockWait lets waiters load too).
func (c *cache) rebuildOrWait(ctx context.Context, id, key string) (impl.CacheRead, error) {
	deadline := time.Now().Add(c.opts.LockWait)
	for {
		r, won, err := c.rebuild(ctx, id, key, usable)
		if err != nil || won {
			return r, err
		}
		if !time.Now().Before(deadline) {
			rec, err := c.loadAndFill(ctx, id, key)
			if err != nil {
				return impl.CacheRead{}, err
			}
			return impl.CacheRead{Record: rec, Source: impl.FromOrigin}, nil
		}
		if err := impl.Sleep(ctx, c.opts.PollEvery); err != nil {
			return impl.CacheRead{}, err
		}
		e, err := c.store.Read(ctx, key, false)
		if err != nil {
			return impl.CacheRead{}, err
		}
		if usable(e) {
			return withID(read(e, impl.FromShared), id), nil
		}
	}
}

// usable reports whether e holds a value to serve.
func usable(e impl.CacheEntry) bool { return e.Found }
