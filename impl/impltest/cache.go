package impltest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/origin"
)

// Cache test parameters.
const (
	// cacheTTL is the entries' TTL in the tests that do not wait for an
	// expiry: long enough never to expire mid-test.
	cacheTTL = 30 * time.Second
	// cacheSlowLoad is the origin's load latency in the tests that need a
	// load to be in flight while something else happens.
	cacheSlowLoad = 150 * time.Millisecond
	// cacheReaders is the number of concurrent readers of the collapse
	// tests.
	cacheReaders = 16
	// cacheEventually bounds waiting for an asynchronous effect (an
	// invalidation reaching a client-side cache).
	cacheEventually = 5 * time.Second
)

// cacheCase is what each cache test receives.
type cacheCase struct {
	env      Env
	open     impl.Opener
	backend  impl.Backend
	strategy string
}

// cache returns a cache of the case's strategy on a fresh keyspace with a
// fresh origin, with the suite's default options changed by opt. It skips
// the test when the backend does not support the strategy.
func (c cacheCase) cache(t *testing.T, opts origin.Options, opt func(*impl.CacheOptions)) (impl.Cache, *origin.Origin, impl.Keyspace) {
	t.Helper()
	ks := c.env.Keyspace(t)
	o := origin.New(opts)
	cache := c.cacheOn(t, c.backend, ks, o, opt)
	return cache, o, ks
}

// cacheOn returns a cache of the case's strategy on backend b.
func (c cacheCase) cacheOn(t *testing.T, b impl.Backend, ks impl.Keyspace, o impl.Origin, opt func(*impl.CacheOptions)) impl.Cache {
	t.Helper()
	co := impl.CacheOptions{Keys: ks, Origin: o, TTL: cacheTTL}
	if opt != nil {
		opt(&co)
	}
	cache, err := b.(impl.CacheBackend).Cache(c.strategy, co)
	skipUnsupportedCache(t, c.env, b, c.strategy, err)
	if err != nil {
		t.Fatalf("Cache(%q): %v", c.strategy, err)
	}
	t.Cleanup(func() {
		if err := cache.Close(); err != nil {
			t.Errorf("cache Close: %v", err)
		}
	})
	return cache
}

// cacheMayBeUnsupported reports whether backend b may answer
// impl.ErrNotSupported for strategy on env's server: a strategy the
// backend lacks (env.Lacks), or the client-side strategy on a server
// without client tracking (the embedded miniredis). Every other strategy
// must be supported.
func cacheMayBeUnsupported(t *testing.T, env Env, b impl.Backend, strategy string) bool {
	t.Helper()
	if slices.Contains(env.Lacks, strategy) {
		return true
	}
	return strategy == impl.CacheClientSide && !serverHasTracking(t, env)
}

// serverHasTracking reports whether env's server knows client tracking
// (CLIENT TRACKINGINFO, Redis 6.2+), asking through the neutral Admin
// client; an error reply means it does not.
func serverHasTracking(t *testing.T, env Env) bool {
	t.Helper()
	err := env.Admin.Do(t.Context(), "CLIENT", "TRACKINGINFO").Err()
	var reply redis.Error
	if err != nil && !errors.As(err, &reply) {
		t.Fatalf("CLIENT TRACKINGINFO: %v", err)
	}
	return err == nil
}

// skipUnsupportedCache skips the test when err says b does not support
// strategy and that is allowed (cacheMayBeUnsupported); it fails the test
// when any other strategy, or client-side on a server with tracking,
// is unsupported.
func skipUnsupportedCache(t *testing.T, env Env, b impl.Backend, strategy string, err error) {
	t.Helper()
	if !errors.Is(err, impl.ErrNotSupported) {
		return
	}
	if !cacheMayBeUnsupported(t, env, b, strategy) {
		t.Fatalf("%s does not support cache strategy %s on %s; only the strategies it lacks (%v), and %s without server tracking, may be unsupported: %v",
			b.Name(), strategy, env.Name, env.Lacks, impl.CacheClientSide, err)
	}
	t.Skipf("%s does not support %s: %v", b.Name(), strategy, err)
}

// cacheTest is one conformance test; only lists the strategies it applies
// to (nil: all).
type cacheTest struct {
	name string
	only []string
	run  func(t *testing.T, c cacheCase)
}

// collapsing strategies load once for concurrent misses in one process.
var collapsing = []string{impl.CacheSingleflight, impl.CacheLock, impl.CacheEarly, impl.CacheClientSide}

var cacheTests = []cacheTest{
	{name: "ReadThrough", run: testCacheReadThrough},
	{name: "UpdateNaive", run: testCacheUpdateNaive},
	{name: "UpdateVersioned", run: testCacheUpdateVersioned},
	{name: "VersionedRefusesOlder", run: testCacheVersionedRefusesOlder},
	{name: "SlowReaderNaivePutsBackOld", only: []string{impl.CacheNaive, impl.CacheSingleflight}, run: testCacheSlowReaderNaive},
	{name: "SlowReaderVersioned", run: testCacheSlowReaderVersioned},
	{name: "NotFound", run: testCacheNotFound},
	{name: "OddIDs", run: testCacheOddIDs},
	{name: "CanceledContext", run: testCacheCanceled},
	{name: "ScriptFlush", run: testCacheScriptFlush},
	{name: "ConcurrentMissesCollapse", only: collapsing, run: testCacheCollapse},
	{name: "OneRebuildAcrossProcesses", only: []string{impl.CacheLock, impl.CacheEarly}, run: testCacheOneRebuild},
	{name: "LockServesStale", only: []string{impl.CacheLock}, run: testCacheLockServesStale},
	{name: "EarlyRecomputes", only: []string{impl.CacheEarly}, run: testCacheEarly},
	{name: "ClientSideInvalidation", only: []string{impl.CacheClientSide}, run: testCacheClientSide},
}

// RunCache runs the cache conformance suite: for every strategy of
// impl.CacheStrategies, every test that applies to it, against env, with a
// backend that open connects. Only the client-side strategy may be
// reported as not supported (impl.ErrNotSupported), and only by go-redis
// or on a server without client tracking: it is then skipped, with the
// reason; any other unsupported strategy fails.
func RunCache(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	t.Run("Strategies", func(t *testing.T) { testCacheStrategies(t, env, open) })
	for _, strategy := range impl.CacheStrategies() {
		t.Run(strategy, func(t *testing.T) {
			b := openBackend(t, env, open)
			probe, err := b.(impl.CacheBackend).Cache(strategy, impl.CacheOptions{Keys: impl.MustKeyspace("probe:"), Origin: origin.New(origin.Options{})})
			skipUnsupportedCache(t, env, b, strategy, err)
			if err != nil {
				t.Fatalf("Cache(%q): %v", strategy, err)
			}
			if err := probe.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			c := cacheCase{env: env, open: open, backend: b, strategy: strategy}
			for _, tt := range cacheTests {
				if tt.only != nil && !slices.Contains(tt.only, strategy) {
					continue
				}
				t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
			}
		})
	}
}

func testCacheStrategies(t *testing.T, env Env, open impl.Opener) {
	b := openBackend(t, env, open)
	cb, ok := b.(impl.CacheBackend)
	if !ok {
		t.Fatalf("%T does not implement impl.CacheBackend", b)
	}
	ks := env.Keyspace(t)
	o := origin.New(origin.Options{})
	for _, name := range impl.CacheStrategies() {
		cache, err := cb.Cache(name, impl.CacheOptions{Keys: ks, Origin: o})
		switch {
		case err == nil:
			if err := cache.Close(); err != nil {
				t.Errorf("Cache(%q).Close: %v", name, err)
			}
			if err := cache.Close(); err != nil {
				t.Errorf("Cache(%q) second Close: %v", name, err)
			}
		case errors.Is(err, impl.ErrNotSupported) && cacheMayBeUnsupported(t, env, b, name):
			t.Logf("Cache(%q): %v", name, err)
		default:
			t.Errorf("Cache(%q): %v", name, err)
		}
	}
	for _, lacked := range env.Lacks {
		if _, err := cb.Cache(lacked, impl.CacheOptions{Keys: ks, Origin: o}); !errors.Is(err, impl.ErrNotSupported) {
			t.Errorf("%s Cache(%s), a strategy it lacks: error = %v, want ErrNotSupported", b.Name(), lacked, err)
		}
	}
	for _, name := range []string{"", "NAIVE", "lock ", "nope"} {
		if _, err := cb.Cache(name, impl.CacheOptions{Keys: ks, Origin: o}); !errors.Is(err, impl.ErrUnknownStrategy) {
			t.Errorf("Cache(%q) error = %v, want ErrUnknownStrategy", name, err)
		}
	}
	if _, err := cb.Cache(impl.CacheNaive, impl.CacheOptions{Keys: ks, Origin: o, Write: "nope"}); !errors.Is(err, impl.ErrUnknownStrategy) {
		t.Errorf("Cache with write mode nope: error = %v, want ErrUnknownStrategy", err)
	}
	for name, opts := range map[string]impl.CacheOptions{
		"no Keys":      {Origin: o},
		"no Origin":    {Keys: ks},
		"negative TTL": {Keys: ks, Origin: o, TTL: -time.Second},
		"TTL < 1ms":    {Keys: ks, Origin: o, TTL: time.Microsecond},
		"Beta < 0":     {Keys: ks, Origin: o, Beta: -1},
	} {
		if _, err := cb.Cache(impl.CacheNaive, opts); err == nil {
			t.Errorf("Cache with %s: no error", name)
		}
	}
}

// mustGet reads id and checks its version and value.
func mustGet(t *testing.T, ctx context.Context, c impl.Cache, id string, want impl.Record) impl.CacheRead {
	t.Helper()
	r, err := c.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	if r.ID != id || r.Version != want.Version || r.Value != want.Value {
		t.Fatalf("Get(%q) = {%q v%d %q}, want {%q v%d %q}", id, r.ID, r.Version, r.Value, id, want.Version, want.Value)
	}
	return r
}

// rawEntry reads an entry through the admin connection.
func rawEntry(t *testing.T, ctx context.Context, admin redis.UniversalClient, key string) (map[string]string, time.Duration) {
	t.Helper()
	h, err := admin.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	ttl, err := admin.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return h, ttl
}

// wantEntry checks the entry of id in Redis: version and value, and that
// it expires.
func wantEntry(t *testing.T, ctx context.Context, c cacheCase, ks impl.Keyspace, id string, version int64, value string) {
	t.Helper()
	h, ttl := rawEntry(t, ctx, c.env.Admin, impl.CacheKey(ks, id))
	if h["v"] != strconv.FormatInt(version, 10) || h["d"] != value {
		t.Errorf("entry of %q = %v, want v=%d d=%q", id, h, version, value)
	}
	if ttl <= 0 {
		t.Errorf("entry of %q has PTTL %s, want an expiry", id, ttl)
	}
}

// wantNoEntry checks that id has no entry in Redis.
func wantNoEntry(t *testing.T, ctx context.Context, c cacheCase, ks impl.Keyspace, id string) {
	t.Helper()
	if h, _ := rawEntry(t, ctx, c.env.Admin, impl.CacheKey(ks, id)); len(h) != 0 {
		t.Errorf("entry of %q = %v, want none", id, h)
	}
}

// wantFloor checks id's version floor (0: no floor key).
func wantFloor(t *testing.T, ctx context.Context, c cacheCase, ks impl.Keyspace, id string, version int64) {
	t.Helper()
	key := impl.CacheVersionKey(ks, id)
	v, err := c.env.Admin.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		v, err = 0, nil
	}
	if err != nil || v != version {
		t.Errorf("version floor of %q = %d, %v; want %d", id, v, err, version)
	}
	if version > 0 {
		if ttl, err := c.env.Admin.PTTL(ctx, key).Result(); err != nil || ttl <= 0 {
			t.Errorf("version floor of %q has PTTL %s, %v; want an expiry", id, ttl, err)
		}
	}
}

// wantLoads checks the origin's load count.
func wantLoads(t *testing.T, o *origin.Origin, want int64) {
	t.Helper()
	if n := o.Loads(); n != want {
		t.Errorf("origin loads = %d, want %d", n, want)
	}
}

// waitLoads waits until the origin has served n loads (they are then in
// flight or done).
func waitLoads(t *testing.T, o *origin.Origin, n int64) {
	t.Helper()
	deadline := time.Now().Add(cacheEventually)
	for o.Loads() < n {
		if time.Now().After(deadline) {
			t.Fatalf("origin loads = %d after %s, want %d", o.Loads(), cacheEventually, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func testCacheReadThrough(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{}, nil)
	rec := o.Put("u1", `{"name":"ada"}`)
	r := mustGet(t, ctx, cache, "u1", rec)
	if r.Source != impl.FromOrigin {
		t.Errorf("first Get source = %s, want %s", r.Source, impl.FromOrigin)
	}
	wantLoads(t, o, 1)
	wantEntry(t, ctx, c, ks, "u1", 1, rec.Value)
	_, ttl := rawEntry(t, ctx, c.env.Admin, impl.CacheKey(ks, "u1"))
	maxTTL := cacheTTL
	if c.strategy == impl.CacheLock {
		maxTTL *= 2 // TTL + StaleFor
	}
	if ttl > maxTTL {
		t.Errorf("entry PTTL %s > %s", ttl, maxTTL)
	}
	for range 5 {
		r := mustGet(t, ctx, cache, "u1", rec)
		// A client-side cache may still hold the miss it cached before the
		// fill until the invalidation arrives: then the read goes to Redis.
		if !r.Source.Hit() && r.Source != impl.FromShared {
			t.Errorf("later Get source = %s, want a hit", r.Source)
		}
	}
	wantLoads(t, o, 1)
}

func testCacheUpdateNaive(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{}, nil)
	o.Put("u1", "a")
	mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
	rec, err := cache.Update(ctx, "u1", "b")
	if err != nil || rec.Version != 2 || rec.Value != "b" {
		t.Fatalf("Update = %+v, %v; want version 2", rec, err)
	}
	if n, err := c.env.Admin.Exists(ctx, impl.CacheKey(ks, "u1")).Result(); err != nil || n != 0 {
		t.Errorf("entry after a naive Update: EXISTS = %d, %v; want deleted", n, err)
	}
	eventuallyGet(t, ctx, cache, "u1", rec)
	wantEntry(t, ctx, c, ks, "u1", 2, "b")
	wantFloor(t, ctx, c, ks, "u1", 0) // naive writes keep no floor
}

func testCacheUpdateVersioned(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{}, func(co *impl.CacheOptions) { co.Write = impl.CacheWriteVersioned })
	o.Put("u1", "a")
	mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
	wantEntry(t, ctx, c, ks, "u1", 1, "a")
	wantFloor(t, ctx, c, ks, "u1", 0)
	rec, err := cache.Update(ctx, "u1", "b")
	if err != nil || rec.Version != 2 {
		t.Fatalf("Update = %+v, %v; want version 2", rec, err)
	}
	wantNoEntry(t, ctx, c, ks, "u1")
	wantFloor(t, ctx, c, ks, "u1", 2)
	eventuallyGet(t, ctx, cache, "u1", rec)
	wantEntry(t, ctx, c, ks, "u1", 2, "b")
	wantLoads(t, o, 2)
}

// eventuallyGet reads id until it returns want (a client-side cache sees
// the invalidation asynchronously; the others at once).
func eventuallyGet(t *testing.T, ctx context.Context, cache impl.Cache, id string, want impl.Record) impl.CacheRead {
	t.Helper()
	deadline := time.Now().Add(cacheEventually)
	for {
		r, err := cache.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%q): %v", id, err)
		}
		if r.Version == want.Version && r.Value == want.Value {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%q) still returns v%d %q after %s, want v%d %q", id, r.Version, r.Value, cacheEventually, want.Version, want.Value)
		}
		time.Sleep(time.Millisecond)
	}
}

// testCacheVersionedRefusesOlder: the versioned fill refuses a version
// older than the record's version floor or than the cached entry; an equal
// version is accepted.
func testCacheVersionedRefusesOlder(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{LoadLatency: cacheSlowLoad}, func(co *impl.CacheOptions) { co.Write = impl.CacheWriteVersioned })
	key := impl.CacheKey(ks, "u1")
	for i := range 3 {
		o.Put("u1", "v"+strconv.Itoa(i+1))
	}
	// A floor at version 5: the origin's version 3 is older.
	if err := c.env.Admin.Set(ctx, impl.CacheVersionKey(ks, "u1"), 5, cacheTTL).Err(); err != nil {
		t.Fatal(err)
	}
	mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 3, Value: "v3"})
	wantNoEntry(t, ctx, c, ks, "u1") // refused
	// Once the origin reaches version 5, the fill is accepted.
	o.Put("u1", "v4")
	o.Put("u1", "v5")
	eventuallyGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 5, Value: "v5"})
	wantEntry(t, ctx, c, ks, "u1", 5, "v5")
	wantFloor(t, ctx, c, ks, "u1", 5)

	// A fill of version 5 that lands after another process cached
	// version 7 is refused too.
	if err := c.env.Admin.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	loads := o.Loads()
	done := make(chan error, 1)
	go func() {
		_, err := cache.Get(ctx, "u1")
		done <- err
	}()
	waitLoads(t, o, loads+1) // the load of version 5 is in flight
	if err := c.env.Admin.HSet(ctx, key, "v", 7, "d", "seven", "c", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.env.Admin.PExpire(ctx, key, 2*cacheTTL).Err(); err != nil { // fresh for lock too
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Get: %v", err)
	}
	wantEntry(t, ctx, c, ks, "u1", 7, "seven")
	eventuallyGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 7, Value: "seven"})
}

// slowReaderRace runs the classic race: a reader misses and starts a slow
// load (old version), the writer updates and invalidates, then the
// reader's fill lands. It returns what the reader got.
func slowReaderRace(t *testing.T, ctx context.Context, cache impl.Cache, o *origin.Origin) impl.CacheRead {
	t.Helper()
	o.Put("u1", "old")
	type got struct {
		r   impl.CacheRead
		err error
	}
	done := make(chan got, 1)
	go func() {
		r, err := cache.Get(ctx, "u1")
		done <- got{r, err}
	}()
	waitLoads(t, o, 1) // the reader's load of "old" is in flight
	if _, err := cache.Update(ctx, "u1", "new"); err != nil {
		t.Fatalf("Update: %v", err)
	}
	g := <-done
	if g.err != nil {
		t.Fatalf("Get: %v", g.err)
	}
	if g.r.Version != 1 || g.r.Value != "old" {
		t.Fatalf("slow Get = v%d %q, want v1 \"old\" (loaded before the update)", g.r.Version, g.r.Value)
	}
	return g.r
}

// testCacheSlowReaderNaive documents the seed's bug: with naive writes the
// slow reader puts the old value back after the writer's delete.
func testCacheSlowReaderNaive(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{LoadLatency: cacheSlowLoad}, nil)
	slowReaderRace(t, ctx, cache, o)
	wantEntry(t, ctx, c, ks, "u1", 1, "old")
	mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 1, Value: "old"}) // stale until the TTL
}

// testCacheSlowReaderVersioned: with versioned writes the slow reader's
// fill is refused; the next read loads the new version.
func testCacheSlowReaderVersioned(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{LoadLatency: cacheSlowLoad}, func(co *impl.CacheOptions) { co.Write = impl.CacheWriteVersioned })
	slowReaderRace(t, ctx, cache, o)
	wantNoEntry(t, ctx, c, ks, "u1")
	wantFloor(t, ctx, c, ks, "u1", 2)
	eventuallyGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 2, Value: "new"})
	wantEntry(t, ctx, c, ks, "u1", 2, "new")
}

func testCacheNotFound(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, _, ks := c.cache(t, origin.Options{}, nil)
	if _, err := cache.Get(ctx, "nobody"); !errors.Is(err, impl.ErrRecordNotFound) {
		t.Errorf("Get(nobody) error = %v, want ErrRecordNotFound", err)
	}
	if n, err := c.env.Admin.Exists(ctx, impl.CacheKey(ks, "nobody"), impl.CacheLockKey(ks, "nobody"), impl.CacheVersionKey(ks, "nobody")).Result(); err != nil || n != 0 {
		t.Errorf("keys after a failed load: EXISTS = %d, %v; want none", n, err)
	}
}

func testCacheOddIDs(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{}, nil)
	for i, id := range oddItems {
		o.Put(id, "value-"+strconv.Itoa(i))
	}
	for i, id := range oddItems {
		mustGet(t, ctx, cache, id, impl.Record{ID: id, Version: 1, Value: "value-" + strconv.Itoa(i)})
		wantEntry(t, ctx, c, ks, id, 1, "value-"+strconv.Itoa(i))
	}
	keys := scanKeys(t, ctx, c.env.Admin, ks)
	var want []string
	for _, id := range oddItems {
		want = append(want, impl.CacheKey(ks, id))
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("keys under the prefix = %q, want %q", keys, want)
	}
}

func testCacheCanceled(t *testing.T, c cacheCase) {
	cache, o, _ := c.cache(t, origin.Options{}, nil)
	o.Put("u1", "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cache.Get(ctx, "u1"); err == nil {
		t.Errorf("Get with a canceled context: no error")
	}
	if _, err := cache.Update(ctx, "u1", "b"); err == nil {
		t.Errorf("Update with a canceled context: no error")
	}
}

func testCacheScriptFlush(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{}, func(co *impl.CacheOptions) { co.Write = impl.CacheWriteVersioned })
	o.Put("u1", "a")
	mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
	if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	rec, err := cache.Update(ctx, "u1", "b")
	if err != nil {
		t.Fatalf("Update after SCRIPT FLUSH: %v", err)
	}
	wantNoEntry(t, ctx, c, ks, "u1")
	wantFloor(t, ctx, c, ks, "u1", 2)
	eventuallyGet(t, ctx, cache, "u1", rec)
	wantEntry(t, ctx, c, ks, "u1", 2, "b")
}

// testCacheCollapse: concurrent misses of one key in one process cause one
// load.
func testCacheCollapse(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, _ := c.cache(t, origin.Options{LoadLatency: cacheSlowLoad}, nil)
	rec := o.Put("hot", "v")
	reads := concurrentGets(t, ctx, []impl.Cache{cache}, cacheReaders, "hot")
	wantLoads(t, o, 1)
	loaded := 0
	for _, r := range reads {
		if r.Version != rec.Version || r.Value != rec.Value {
			t.Errorf("concurrent Get = v%d %q, want v%d %q", r.Version, r.Value, rec.Version, rec.Value)
		}
		if r.Source == impl.FromOrigin {
			loaded++
		}
	}
	if loaded != 1 {
		t.Errorf("%d reads report they loaded, want 1", loaded)
	}
}

// concurrentGets runs n readers per cache, released together, and returns
// every read.
func concurrentGets(t *testing.T, ctx context.Context, caches []impl.Cache, n int, id string) []impl.CacheRead {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		reads []impl.CacheRead
		start = make(chan struct{})
	)
	for _, cache := range caches {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := cache.Get(ctx, id)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				reads = append(reads, r)
			}()
		}
	}
	close(start)
	wg.Wait()
	return reads
}

// testCacheOneRebuild: concurrent misses in several processes (separate
// backends) cause one load overall.
func testCacheOneRebuild(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	o := origin.New(origin.Options{LoadLatency: cacheSlowLoad})
	o.Put("hot", "v")
	caches := []impl.Cache{c.cacheOn(t, c.backend, ks, o, nil)}
	for range 2 {
		caches = append(caches, c.cacheOn(t, openBackend(t, c.env, c.open), ks, o, nil))
	}
	reads := concurrentGets(t, ctx, caches, cacheReaders/2, "hot")
	wantLoads(t, o, 1)
	if len(reads) != len(caches)*(cacheReaders/2) {
		t.Errorf("%d reads answered, want %d", len(reads), len(caches)*(cacheReaders/2))
	}
}

// testCacheLockServesStale: past its TTL, an entry is rebuilt by the
// reader that gets the lock, and served stale while another holds it.
func testCacheLockServesStale(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	const ttl = 50 * time.Millisecond
	cache, o, ks := c.cache(t, origin.Options{}, func(co *impl.CacheOptions) {
		co.TTL, co.StaleFor = ttl, cacheTTL
	})
	o.Put("u1", "a")
	mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
	o.Put("u1", "b") // changed behind the cache's back: the entry is now stale
	key := impl.CacheKey(ks, "u1")
	_, before := rawEntry(t, ctx, c.env.Admin, key)
	time.Sleep(2 * ttl)
	if _, after := rawEntry(t, ctx, c.env.Admin, key); after >= before {
		t.Skipf("the server's clock does not run (PTTL %s, then %s after %s): an embedded server", before, after, 2*ttl)
	}
	lockKey := impl.CacheLockKey(ks, "u1")
	if err := c.env.Admin.Set(ctx, lockKey, "someone-else", cacheTTL).Err(); err != nil {
		t.Fatal(err)
	}
	r := mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
	if r.Source != impl.FromStale {
		t.Errorf("Get while another holds the lock: source %s, want %s", r.Source, impl.FromStale)
	}
	wantLoads(t, o, 1)
	if v, err := c.env.Admin.Get(ctx, lockKey).Result(); err != nil || v != "someone-else" {
		t.Errorf("lock after the stale read = %q, %v; want the other holder's", v, err)
	}
	if err := c.env.Admin.Del(ctx, lockKey).Err(); err != nil {
		t.Fatal(err)
	}
	r = mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 2, Value: "b"})
	if r.Source != impl.FromOrigin {
		t.Errorf("Get with the lock free: source %s, want %s", r.Source, impl.FromOrigin)
	}
	wantLoads(t, o, 2)
	if n, err := c.env.Admin.Exists(ctx, lockKey).Result(); err != nil || n != 0 {
		t.Errorf("rebuild lock left behind: EXISTS = %d, %v", n, err)
	}
	r = mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 2, Value: "b"})
	if r.Source != impl.FromRedis {
		t.Errorf("Get after the rebuild: source %s, want %s", r.Source, impl.FromRedis)
	}
}

// testCacheEarly: with a huge Beta every read recomputes early when it can
// claim the rebuild, and serves the valid entry when it cannot; with a tiny
// Beta it never does.
func testCacheEarly(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	o := origin.New(origin.Options{LoadLatency: 2 * time.Millisecond})
	o.Put("u1", "a")
	eager := c.cacheOn(t, c.backend, ks, o, func(co *impl.CacheOptions) { co.Beta = 1e9 })
	lazy := c.cacheOn(t, c.backend, ks, o, func(co *impl.CacheOptions) { co.Beta = 1e-9 })
	mustGet(t, ctx, eager, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
	wantLoads(t, o, 1)
	for range 3 {
		r := mustGet(t, ctx, lazy, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
		if r.Source != impl.FromRedis {
			t.Errorf("lazy Get: source %s, want %s", r.Source, impl.FromRedis)
		}
	}
	wantLoads(t, o, 1)
	o.Put("u1", "b")
	r := mustGet(t, ctx, eager, "u1", impl.Record{ID: "u1", Version: 2, Value: "b"})
	if r.Source != impl.FromOrigin {
		t.Errorf("eager Get: source %s, want %s (early recompute)", r.Source, impl.FromOrigin)
	}
	wantLoads(t, o, 2)
	lockKey := impl.CacheLockKey(ks, "u1")
	if err := c.env.Admin.Set(ctx, lockKey, "someone-else", cacheTTL).Err(); err != nil {
		t.Fatal(err)
	}
	o.Put("u1", "c")
	r = mustGet(t, ctx, eager, "u1", impl.Record{ID: "u1", Version: 2, Value: "b"})
	if r.Source != impl.FromRedis {
		t.Errorf("eager Get while another rebuilds: source %s, want %s", r.Source, impl.FromRedis)
	}
	wantLoads(t, o, 2)
}

// testCacheClientSide: reads are served locally once cached, and a write
// from another connection reaches the local copy through the server's
// invalidation.
func testCacheClientSide(t *testing.T, c cacheCase) {
	ctx := testContext(t)
	cache, o, ks := c.cache(t, origin.Options{}, nil)
	o.Put("u1", "a")
	mustGet(t, ctx, cache, "u1", impl.Record{ID: "u1", Version: 1, Value: "a"})
	waitLocal(t, ctx, cache, "u1", 1)

	// Another connection rewrites the entry: the local copy must go.
	key := impl.CacheKey(ks, "u1")
	if err := c.env.Admin.HSet(ctx, key, "v", 9, "d", "from-admin").Err(); err != nil {
		t.Fatal(err)
	}
	eventuallyGet(t, ctx, cache, "u1", impl.Record{Version: 9, Value: "from-admin"})
	waitLocal(t, ctx, cache, "u1", 9)

	// Another backend (a separate application server) updates through the
	// cache family: the versioned invalidation deletes the entry, which
	// evicts the local copy, and the next read loads the new version.
	other := openBackend(t, c.env, c.open)
	writer, err := other.(impl.CacheBackend).Cache(impl.CacheNaive, impl.CacheOptions{Keys: ks, Origin: o, TTL: cacheTTL, Write: impl.CacheWriteVersioned})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	for range 8 {
		o.Put("u1", "filler") // the origin reaches the admin's version 9
	}
	rec, err := writer.Update(ctx, "u1", "b")
	if err != nil || rec.Version != 10 {
		t.Fatalf("Update from another backend = %+v, %v; want version 10", rec, err)
	}
	r := eventuallyGet(t, ctx, cache, "u1", rec)
	if r.Source == impl.FromLocal {
		t.Errorf("first read of the new version was a local hit")
	}
	waitLocal(t, ctx, cache, "u1", 10)
}

// waitLocal reads id until a read is served from the client-side cache at
// the given version.
func waitLocal(t *testing.T, ctx context.Context, cache impl.Cache, id string, version int64) {
	t.Helper()
	deadline := time.Now().Add(cacheEventually)
	for {
		r, err := cache.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%q): %v", id, err)
		}
		if r.Source == impl.FromLocal && r.Version == version {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%q) = v%d from %s after %s, want a local hit at v%d", id, r.Version, r.Source, cacheEventually, version)
		}
		time.Sleep(time.Millisecond)
	}
}
