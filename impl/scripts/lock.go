package scripts

import _ "embed"

// LockRelease is the compare-and-delete of the token and fenced locks:
// KEYS[1] is the lock key, ARGV[1] the holder's token; it deletes the lock
// only if it still holds the token and returns 1, else 0.
//
//go:embed lock_release.lua
var LockRelease string

// LockRefresh is the compare-and-pexpire of the token and fenced locks:
// KEYS[1] is the lock key, ARGV[1] the holder's token, ARGV[2] the lease in
// milliseconds; it extends the lease only if the lock still holds the
// token and returns 1, else 0.
//
//go:embed lock_refresh.lua
var LockRefresh string

// LockFencedAcquire is the fenced lock's acquire: KEYS[1] is the lock key,
// KEYS[2] its fence counter, ARGV[1] the token, ARGV[2] the lease in
// milliseconds. It runs SET NX PX and, when that took the lock, INCR on
// the counter, returning the new fencing token; 0 when the lock is held.
//
//go:embed lock_fenced_acquire.lua
var LockFencedAcquire string

// LockFencedWrite is the protected resource's fencing check: KEYS[1] is the
// resource hash, KEYS[2] its log, ARGV[1] the writer's fencing token,
// ARGV[2] the value, ARGV[3] the log length to keep. It rejects a token
// older than the newest accepted ({0, newest}) and otherwise stores the
// value, logs "<token>:<value>" and returns {1, token}.
//
//go:embed lock_fenced_write.lua
var LockFencedWrite string

// LockProbeEnter is instrumentation for the lock-race scenario, not part
// of any lock: a holder entering its critical section records itself in a
// server-side "inside" set with the end of its lease (server time), and
// the script counts overlaps, overlaps on live leases and the most holders
// inside at once.
//
//go:embed lock_probe_enter.lua
var LockProbeEnter string

// LockProbeLeave is the lock-race scenario's probe for a holder leaving
// its critical section, just before its release (ARGV[3] says whether
// tokens are unique per acquisition): it counts leases that ended while
// their holder was inside and releases of a lock that another holder
// holds.
//
//go:embed lock_probe_leave.lua
var LockProbeLeave string
