package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// loadStartTimeout bounds waiting for a load to reach the server: a hang
// guard, far above what starting one takes on a starved machine.
const loadStartTimeout = time.Minute

// scriptCalls returns how many EVALSHA and EVAL calls the server has run
// (what stock.deduct's lua strategy sends); ok is false when its INFO does
// not say (an embedded server).
func scriptCalls(ctx context.Context, admin redis.UniversalClient) (n int64, ok bool) {
	info, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(info, "\n") {
		name, stats, found := strings.Cut(strings.TrimSpace(line), ":")
		if !found || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, isCalls := strings.CutPrefix(kv, "calls="); isCalls {
				c, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, false
				}
				n, ok = n+c, true
			}
		}
	}
	return n, ok
}

// waitForScriptCalls waits until the server has run n more script calls
// than base: a load started by another goroutine is under way, however
// long the command took to get there. It gives up after
// loadStartTimeout (an error), when parent ends, or at once when the
// server's INFO does not count calls; it returns false then.
func waitForScriptCalls(parent context.Context, t *testing.T, admin redis.UniversalClient, base, n int64) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(parent, loadStartTimeout)
	defer cancel()
	for {
		calls, ok := scriptCalls(ctx, admin)
		if !ok {
			return false
		}
		if calls >= base+n {
			return true
		}
		select {
		case <-ctx.Done():
			if parent.Err() == nil {
				t.Errorf("the load did not run %d script calls within %s", n, loadStartTimeout)
			}
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}
