package scripts

import _ "embed"

// CacheSet is the versioned cache write (impl.CacheWriteVersioned).
// KEYS[1] is the entry hash, KEYS[2] the record's version floor; ARGV[1]
// is "fill" (ARGV version, value, cost in µs, TTL in ms: write the entry
// unless the floor or the cached entry is newer; {1, version} or
// {0, newest}) or "invalidate" (ARGV version, floor TTL in ms: raise the
// floor, delete an older entry; {1, floor}).
//
//go:embed cache_set.lua
var CacheSet string

// CacheUnlock releases a cache rebuild lock: KEYS[1] is the lock, ARGV[1]
// the holder's token; it deletes the lock only if it still holds that
// token and returns 1, else 0.
//
//go:embed cache_unlock.lua
var CacheUnlock string
