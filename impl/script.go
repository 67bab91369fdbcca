package impl

import "context"

// ScriptBackend is implemented by backends that run the caller's own Lua
// scripts on their own connections. Scenarios use it for the work an
// application does on its own client while it holds a lock (the lock
// race's unguarded read-modify-write and the probes that must run
// atomically with it, the lock-expiry acquisition counter), so that a
// timed operation calls the backend under test and nothing else.
type ScriptBackend interface {
	// Script returns src ready to run on this backend: EVALSHA, and EVAL
	// when the server does not know the script (after SCRIPT FLUSH).
	Script(src string) Script
}

// Script is one Lua script bound to a backend; it is safe for concurrent
// use.
type Script interface {
	// Run runs the script with keys and args. The script replies with an
	// integer, returned as a slice of one, or an array of integers; a nil
	// reply (Lua false) is an empty slice. Any other reply is an error, and
	// so is an error reply (wrapped).
	Run(ctx context.Context, keys []string, args ...string) ([]int64, error)
}
