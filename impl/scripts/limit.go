package scripts

import _ "embed"

// The limiter scripts (impl.LimitFixedWindow, impl.LimitSlidingLog,
// impl.LimitSlidingWindow, impl.LimitGCRA). They all take the same
// arguments, built by impl.LimitScriptArgs:
//
//	KEYS[1]  the strategy's key (impl.LimitKey)
//	ARGV[1]  limit (units per period)
//	ARGV[2]  period in microseconds
//	ARGV[3]  burst (gcra only)
//	ARGV[4]  n, the units asked for
//	ARGV[5]  the time in microseconds, or "" to read the server's TIME
//
// and all reply {allowed (0/1), remaining, retry_after_us (-1: never),
// now_us}, decoded by impl.DecodeLimitReply. ARGV[5] is set only by tests
// (impl.LimitOptions.Now); in production every script takes the time from
// the server. Key expiries only clean up: no decision depends on them.

// LimitFixedWindow is the fixed-window limiter: one INCRBY counter per
// clock-aligned window, KEYS[1]..":"..window, its expiry set when the
// window's first admission creates it.
//
//go:embed limit_fixed_window.lua
var LimitFixedWindow string

// LimitSlidingLog is the sliding-log limiter: a sorted set of admissions
// scored by server time, trimmed and counted in one call.
//
//go:embed limit_sliding_log.lua
var LimitSlidingLog string

// LimitSlidingWindow is the two-window weighted counter, in a hash
// {w, cur, prev}.
//
//go:embed limit_sliding_window.lua
var LimitSlidingWindow string

// LimitGCRA is the generic cell rate algorithm with burst: one theoretical
// arrival time per key.
//
//go:embed limit_gcra.lua
var LimitGCRA string
