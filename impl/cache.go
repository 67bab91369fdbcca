package impl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Cache read strategies: how a record is read through the cache.
const (
	// CacheNaive is the seed's cache-aside: read the entry; on a miss load
	// the record from the origin and write it back, with no coordination,
	// so every reader that misses at the same moment loads.
	CacheNaive = "naive"
	// CacheSingleflight collapses concurrent misses of one key inside one
	// process (golang.org/x/sync/singleflight): one load per key per
	// process at a time; other processes still load on their own.
	CacheSingleflight = "singleflight"
	// CacheLock rebuilds an entry under a short Redis lock, once across all
	// processes. An entry is kept CacheOptions.StaleFor past its TTL;
	// readers that find it stale while another process rebuilds it get the
	// stale value, readers that find nothing wait briefly for the rebuild.
	CacheLock = "lock"
	// CacheEarly is probabilistic early expiration ("XFetch", Vattani et
	// al., VLDB 2015): each reader recomputes early with a probability
	// that grows as the entry nears its expiry and with the cost of the
	// last load; the reader that decides to recompute claims the rebuild
	// with the same short Redis lock as CacheLock, so the others keep
	// serving the still valid entry instead of loading too.
	CacheEarly = "early"
	// CacheClientSide keeps entries in the client process too, with
	// server-assisted invalidation (RESP3 client tracking; rueidis
	// DoCache): a hit costs no round trip, and a write anywhere evicts the
	// local copy. Misses collapse per process as with CacheSingleflight.
	// Backends whose library lacks it return an error wrapping
	// ErrNotSupported.
	CacheClientSide = "client-side"
)

// CacheStrategies lists the cache read strategies in display order.
func CacheStrategies() []string {
	return []string{CacheNaive, CacheSingleflight, CacheLock, CacheEarly, CacheClientSide}
}

// Cache write modes: how entries are written and invalidated.
const (
	// CacheWriteNaive writes entries unconditionally (HSET) and
	// invalidates by deleting the entry after the origin was updated. A
	// reader that loaded the old record before the update and writes it
	// after the delete puts the old value back until the entry expires.
	CacheWriteNaive = "naive"
	// CacheWriteVersioned writes entries with one script that refuses a
	// version older than the cached one or than the record's version
	// floor, and invalidates by raising the floor to the new version (kept
	// CacheOptions.VersionTTL, longer than the entry) and deleting the
	// older entry: a slow reader can no longer put an old value back.
	CacheWriteVersioned = "versioned"
)

// CacheWrites lists the cache write modes in display order.
func CacheWrites() []string { return []string{CacheWriteNaive, CacheWriteVersioned} }

// ErrRecordNotFound is returned (wrapped) when the origin has no record
// with the requested id.
var ErrRecordNotFound = errors.New("record not found")

// Record is one record of the origin, as the cache serves it.
type Record struct {
	// ID identifies the record.
	ID string
	// Version counts the record's writes (1 for the first); it only grows.
	Version int64
	// Value is the record's payload.
	Value string
}

// Origin is the system of record behind the cache: the database. The
// cache loads records from it on misses and writes go to it first.
type Origin interface {
	// Load reads the record id; ErrRecordNotFound when there is none.
	Load(ctx context.Context, id string) (Record, error)
	// Store writes value as the record's next version and returns it.
	Store(ctx context.Context, id, value string) (Record, error)
}

// CacheSource says where one read's record came from.
type CacheSource uint8

// Cache sources.
const (
	// FromRedis is a hit: a fresh entry found in Redis.
	FromRedis CacheSource = iota
	// FromLocal is a hit in the client-side cache: no round trip.
	FromLocal
	// FromStale is a stale entry served while another process rebuilds it
	// (CacheLock).
	FromStale
	// FromShared is a miss answered by a load another call made: a
	// singleflight follower, a reader that waited for the lock holder's
	// rebuild, or a rebuild that found the entry already rebuilt.
	FromShared
	// FromOrigin is a miss this call answered by loading from the origin.
	FromOrigin
)

// String returns the source's name, as the steps of a cache cell use it.
func (s CacheSource) String() string {
	switch s {
	case FromRedis:
		return "hit"
	case FromLocal:
		return "local-hit"
	case FromStale:
		return "stale-hit"
	case FromShared:
		return "shared-miss"
	case FromOrigin:
		return "miss"
	}
	return "source-" + strconv.Itoa(int(s))
}

// Hit reports whether the read was served by a cache entry it found (in
// Redis or locally, fresh or stale) rather than by a load.
func (s CacheSource) Hit() bool { return s == FromRedis || s == FromLocal || s == FromStale }

// CacheRead is the answer to one read through the cache.
type CacheRead struct {
	Record
	// Source says where the record came from.
	Source CacheSource
}

// Cache reads records of an Origin through Redis, with one read strategy
// and one write mode. It is safe for concurrent use.
type Cache interface {
	// Get returns the record id, from the cache when it can.
	Get(ctx context.Context, id string) (CacheRead, error)
	// Update writes value to the origin as the record's next version, then
	// invalidates the cached entry as the write mode says, and returns the
	// new record.
	Update(ctx context.Context, id, value string) (Record, error)
	// Close releases what the cache holds of its own (the client-side
	// strategy's caching connections). It does not close the backend.
	Close() error
}

// CacheOptions tunes a cache. Zero fields take the defaults written in
// WithDefaults.
type CacheOptions struct {
	// Keys is the run's keyspace; required.
	Keys Keyspace
	// Origin is the database behind the cache; required.
	Origin Origin
	// Write is the write mode, CacheWriteNaive (default) or
	// CacheWriteVersioned.
	Write string
	// TTL is how long an entry is fresh (default 1 s). Entries are written
	// with this TTL in Redis; CacheLock keeps them StaleFor longer.
	TTL time.Duration
	// StaleFor is how long past its TTL CacheLock keeps an entry to serve
	// while one process rebuilds it (default TTL).
	StaleFor time.Duration
	// LockTTL is the life of the rebuild lock of CacheLock and CacheEarly
	// (default 1 s): the longest a crashed rebuilder can hold others up.
	LockTTL time.Duration
	// LockWait is how long a reader that found nothing to serve waits for
	// another process's rebuild before it loads on its own (default
	// LockTTL).
	LockWait time.Duration
	// PollEvery is how often a waiting reader looks for the rebuilt entry
	// (default 2 ms).
	PollEvery time.Duration
	// Beta is CacheEarly's XFetch factor: above 1 recomputes earlier, below
	// 1 later (default 1).
	Beta float64
	// LocalTTL caps how long CacheClientSide keeps an entry in the process
	// (default TTL; an entry never outlives its Redis TTL either).
	LocalTTL time.Duration
	// VersionTTL is how long a versioned invalidation keeps the record's
	// version floor (default 1 minute, and never less than the entries'
	// TTL): a load slower than this could still put an old value back.
	VersionTTL time.Duration
}

// WithDefaults returns o with zero fields set to their defaults.
func (o CacheOptions) WithDefaults() CacheOptions {
	if o.Write == "" {
		o.Write = CacheWriteNaive
	}
	if o.TTL == 0 {
		o.TTL = time.Second
	}
	if o.StaleFor == 0 {
		o.StaleFor = o.TTL
	}
	if o.LockTTL == 0 {
		o.LockTTL = time.Second
	}
	if o.LockWait == 0 {
		o.LockWait = o.LockTTL
	}
	if o.PollEvery == 0 {
		o.PollEvery = 2 * time.Millisecond
	}
	if o.Beta == 0 {
		o.Beta = 1
	}
	if o.LocalTTL == 0 {
		o.LocalTTL = o.TTL
	}
	if o.VersionTTL == 0 {
		o.VersionTTL = max(time.Minute, o.TTL+o.StaleFor)
	}
	return o
}

// Validate checks options that took their defaults.
func (o CacheOptions) Validate() error {
	switch {
	case o.Keys.Prefix() == "":
		return errors.New("CacheOptions.Keys is required")
	case o.Origin == nil:
		return errors.New("CacheOptions.Origin is required")
	case o.Write != CacheWriteNaive && o.Write != CacheWriteVersioned:
		return fmt.Errorf("%w: write mode %q (known: %v)", ErrUnknownStrategy, o.Write, CacheWrites())
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TTL", o.TTL}, {"StaleFor", o.StaleFor}, {"LockTTL", o.LockTTL}, {"LockWait", o.LockWait}, {"PollEvery", o.PollEvery}, {"LocalTTL", o.LocalTTL}, {"VersionTTL", o.VersionTTL}} {
		if d.v < time.Millisecond {
			return fmt.Errorf("CacheOptions.%s must be at least 1ms, got %s", d.name, d.v)
		}
	}
	if o.VersionTTL < o.TTL {
		return fmt.Errorf("CacheOptions.VersionTTL (%s) must be at least the TTL (%s)", o.VersionTTL, o.TTL)
	}
	if o.Beta < 0 || math.IsNaN(o.Beta) || math.IsInf(o.Beta, 0) {
		return fmt.Errorf("CacheOptions.Beta must be a positive number, got %v", o.Beta)
	}
	return nil
}

// CacheBackend is implemented by backends that offer the cache family.
type CacheBackend interface {
	// Cache returns a cache with the named read strategy (one of
	// CacheStrategies). A strategy the library cannot offer returns an
	// error wrapping ErrNotSupported.
	Cache(strategy string, opts CacheOptions) (Cache, error)
}

// CacheKey is the entry of record id: prefix + "cache:{<id>}", a hash with
// the fields v (version), d (value) and c (the cost of the load that
// produced it, in microseconds). It expires.
func CacheKey(k Keyspace, id string) string { return k.Tagged("cache", id) }

// CacheVersionKey is the version floor of record id (CacheWriteVersioned):
// prefix + "cache:{<id>}:version", a string holding the newest version a
// write invalidated; it expires after CacheOptions.VersionTTL.
func CacheVersionKey(k Keyspace, id string) string { return k.Tagged("cache", id, "version") }

// CacheLockKey is the rebuild lock of record id (CacheLock, CacheEarly):
// prefix + "cache:{<id>}:lock", a string holding the holder's token, with a
// short TTL.
func CacheLockKey(k Keyspace, id string) string { return k.Tagged("cache", id, "lock") }

// CacheEntry is one entry as a CacheStore reads and writes it.
type CacheEntry struct {
	// Found is false when the key does not exist.
	Found bool
	// Version, Value: the cached record.
	Version int64
	Value   string
	// Cost is how long the load that produced the entry took (XFetch's
	// delta).
	Cost time.Duration
	// TTL is the remaining time to live, when the read asked for it
	// (negative: the key has no expiry).
	TTL time.Duration
	// Local is true when the entry came from the client-side cache.
	Local bool
}

// CacheStore is the Redis side of the cache-aside strategies: the few
// commands they need, which each backend implements with its own library.
// The strategies themselves (package impl/cacheaside) are shared, so both
// backends behave identically and differ only in how they talk to Redis.
type CacheStore interface {
	// Read reads the entry at key (HMGET v d c); with ttl true also its
	// remaining TTL (PTTL), in the same round trip.
	Read(ctx context.Context, key string, ttl bool) (CacheEntry, error)
	// Write stores e at key unconditionally with the given TTL (HSET and
	// PEXPIRE in one transaction).
	Write(ctx context.Context, key string, e CacheEntry, ttl time.Duration) error
	// WriteVersioned stores e at key with the given TTL unless the
	// record's version floor (at floorKey) or the cached entry is newer
	// (scripts.CacheSet, fill); it reports whether it wrote.
	WriteVersioned(ctx context.Context, key, floorKey string, e CacheEntry, ttl time.Duration) (bool, error)
	// InvalidateVersioned raises the version floor at floorKey to version,
	// kept floorTTL, and deletes the entry at key when it is older
	// (scripts.CacheSet, invalidate).
	InvalidateVersioned(ctx context.Context, key, floorKey string, version int64, floorTTL time.Duration) error
	// Delete removes key.
	Delete(ctx context.Context, key string) error
	// TryLock sets key to token if it does not exist (SET NX PX).
	TryLock(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	// Unlock deletes key if it still holds token (scripts.CacheUnlock).
	Unlock(ctx context.Context, key, token string) error
}

// LocalCacheStore is a CacheStore that can also read through a
// client-side cache invalidated by the server (CacheClientSide).
type LocalCacheStore interface {
	CacheStore
	// ReadLocal reads the entry at key through the client-side cache,
	// keeping it at most ttl; Local is set on the answer when no round
	// trip was made.
	ReadLocal(ctx context.Context, key string, ttl time.Duration) (CacheEntry, error)
}

// Encode returns the entry's hash fields as strings, in the order
// v (version), d (value), c (cost in microseconds): what a CacheStore
// writes.
func (e CacheEntry) Encode() (version, value, cost string) {
	return strconv.FormatInt(e.Version, 10), e.Value, strconv.FormatInt(e.Cost.Microseconds(), 10)
}

// CacheFields are the entry hash's field names, in the order Encode and
// ParseCacheEntry use.
func CacheFields() []string { return []string{"v", "d", "c"} }

// ParseCacheEntry decodes the fields an HMGET of CacheFields returned, as
// strings (a missing field is ""). An entry without a version is an error:
// something other than paybench wrote the key.
func ParseCacheEntry(version, value, cost string) (CacheEntry, error) {
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return CacheEntry{}, fmt.Errorf("cache entry version %q: %w", version, err)
	}
	e := CacheEntry{Found: true, Version: v, Value: value}
	if cost != "" {
		us, err := strconv.ParseInt(cost, 10, 64)
		if err != nil {
			return CacheEntry{}, fmt.Errorf("cache entry cost %q: %w", cost, err)
		}
		e.Cost = time.Duration(us) * time.Microsecond
	}
	return e, nil
}
