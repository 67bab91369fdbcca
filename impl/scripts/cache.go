package scripts

import _ "embed"

// CacheSet is the versioned cache write (impl.CacheWriteVersioned):
// KEYS[1] is the entry hash, ARGV version, value, cost (µs), TTL (ms) and
// tombstone ("1" or "0"). It writes unless the cached version is newer (or
// equal, for a tombstone) and returns {1, version} or {0, cached_version}.
//
//go:embed cache_set.lua
var CacheSet string

// CacheUnlock releases a cache rebuild lock: KEYS[1] is the lock, ARGV[1]
// the holder's token; it deletes the lock only if it still holds that
// token and returns 1, else 0.
//
//go:embed cache_unlock.lua
var CacheUnlock string
