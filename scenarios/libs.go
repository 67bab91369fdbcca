package scenarios

import (
	"maps"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// lockLibraryStrategies are the lock libraries' strategies, as lock-race
// (expiry false) and lock-expiry (expiry true) expect them to fare.
// None issues a fencing token, so a holder that outlives its lease writes
// to the resource unchecked: lock-expiry expects them to break.
func lockLibraryStrategies(expiry bool) []Strategy {
	if expiry {
		return []Strategy{
			{Name: impl.LockRedsync, Expect: result.Break, Note: "go-redsync/redsync (go-redis): no fencing token, the stale holder's write lands"},
			{Name: impl.LockRedislock, Expect: result.Break, Note: "bsm/redislock (go-redis): no fencing token, the stale holder's write lands"},
			{Name: impl.LockRueidislock, Expect: result.Break, Note: "rueidis/rueidislock (rueidis): UNSUPPORTED here: its lease is extended in the background, which a simulated pause cannot stop; no fencing token"},
		}
	}
	return []Strategy{
		{Name: impl.LockRedsync, Expect: result.Hold, Note: "go-redsync/redsync (go-redis): Redlock, one pool per server, library defaults"},
		{Name: impl.LockRedislock, Expect: result.Hold, Note: "bsm/redislock (go-redis): SET NX PX token, retried every 100ms (README example)"},
		{Name: impl.LockRueidislock, Expect: result.Hold, Note: "rueidis/rueidislock (rueidis): lease extended in the background, waiters woken by client-side caching"},
	}
}

// libraryParams adds a library strategy's settings (impl.LibrarySettings)
// to the cell's params, each under "lib.<name>".
func libraryParams(cell *result.Cell, v any) {
	m := librarySettings(v)
	if len(m) == 0 {
		return
	}
	if cell.Params == nil {
		cell.Params = make(map[string]string, len(m))
	}
	maps.Copy(cell.Params, m)
}

// librarySettings returns a library strategy's settings, each under
// "lib.<name>"; nil for any other strategy.
func librarySettings(v any) map[string]string {
	ls, ok := v.(impl.LibrarySettings)
	if !ok {
		return nil
	}
	m := ls.LibrarySettings()
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out["lib."+k] = v
	}
	return out
}

// limitJudgedAs returns the strategy whose documented promise the
// rate-limit judge holds strategy to: a library's algorithm (redis_rate
// documents GCRA: burst + rate·t), else the strategy itself.
func limitJudgedAs(strategy string) string {
	if strategy == impl.LimitRedisRate {
		return impl.LimitGCRA
	}
	return strategy
}
