package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/errext"
)

// cleanupTimeout bounds claiming the prefix, deleting one cell keyspace
// and deleting the marker.
const cleanupTimeout = 60 * time.Second

// markerKey is the key that says which run owns the prefix while it runs.
func (r *run) markerKey() string { return r.plan.Keys.Key("paybench-run") }

// claimKeys makes sure the run's prefix is its own: unless the plan shares
// the prefix on purpose, a prefix that already holds keys is refused
// (Usage), and a marker key taken with SET NX stops two runs that were
// given the same prefix from corrupting each other.
func (r *run) claimKeys(ctx context.Context) error {
	admin := r.plan.Server.Admin()
	cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	if r.plan.SharePrefix {
		return nil
	}
	if r.plan.CheckPrefix {
		key, err := firstKey(cctx, admin, r.plan.Keys)
		if err != nil {
			return errext.WithExitCodeIfNone(fmt.Errorf("check that prefix %s is unused: %w", r.plan.Keys.Prefix(), err), errext.Redis)
		}
		if key != "" {
			return errext.Errorf(errext.Usage, "prefix %q already holds keys (such as %q): choose another --prefix, or pass --share-prefix to run on them on purpose", r.plan.Keys.Prefix(), key)
		}
	}
	ok, err := admin.SetNX(cctx, r.markerKey(), r.runID(), 0).Result()
	if err != nil {
		return errext.WithExitCodeIfNone(fmt.Errorf("claim prefix %s: %w", r.plan.Keys.Prefix(), err), errext.Redis)
	}
	if !ok {
		owner, _ := admin.Get(cctx, r.markerKey()).Result()
		return errext.Errorf(errext.Usage, "prefix %q is in use by another paybench run (%s holds %q): choose another --prefix, or pass --share-prefix to run on the same keys on purpose", r.plan.Keys.Prefix(), r.markerKey(), owner)
	}
	r.marked = true
	return nil
}

// runID names this run in its marker key.
func (r *run) runID() string {
	return fmt.Sprintf("%s pid %d started %s", hostname(), pid(), time.Now().UTC().Format(time.RFC3339))
}

// firstKey returns a key under ks's prefix, or "" when there is none; on
// a cluster it scans every master.
func firstKey(ctx context.Context, rdb redis.UniversalClient, ks impl.Keyspace) (string, error) {
	var mu sync.Mutex
	found := ""
	err := redisenv.ForEachMaster(ctx, rdb, func(ctx context.Context, node *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, ks.Pattern(), 1000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				mu.Lock()
				if found == "" {
					found = keys[0]
				}
				mu.Unlock()
				return nil
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	})
	return found, err
}

// dropCells deletes the keyspaces of the cells that have ended, unless
// the plan keeps them: each cell's keys go as soon as it is judged, so the
// server holds one cell's keys at a time and each deletion scans a small
// database (deleting a whole suite's keys at the end scanned every key
// once per cell and could outlast its time budget on a busy machine). A
// keyspace that could not be deleted stays pending for the final cleanup.
func (r *run) dropCells(ctx context.Context) []error {
	if r.plan.Keep {
		return nil
	}
	admin := r.plan.Server.Admin()
	var errs []error
	var left []impl.Keyspace
	for _, ks := range r.pending {
		// Each keyspace gets its own time budget, also after an interrupt.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		if _, err := redisenv.DeletePrefix(cctx, admin, ks); err != nil {
			errs = append(errs, err)
			left = append(left, ks)
		}
		// The other servers of a redlock kind hold redsync's keys.
		for _, p := range r.plan.Server.RedlockPeers() {
			if _, err := redisenv.DeletePrefix(cctx, p.Admin(), ks); err != nil {
				errs = append(errs, fmt.Errorf("redlock server %s: %w", p.Redacted(), err))
			}
		}
		cancel()
	}
	r.pending = left
	return errs
}

// cleanup deletes the keys the run created — each cell's own keyspace and
// the marker — and nothing else, or with Keep leaves the cells' keys in
// place. A failure names the command that finishes the job.
func (r *run) cleanup(ctx context.Context) error {
	errs := r.dropCells(ctx)
	var left []string
	for _, ks := range r.pending {
		if !r.plan.Keep {
			left = append(left, ks.Pattern())
		}
	}
	if r.marked {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := r.plan.Server.Admin().Del(cctx, r.markerKey()).Err(); err != nil {
			errs = append(errs, err)
			left = append(left, r.markerKey())
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errext.WithExitCodeIfNone(fmt.Errorf("delete the run's keys: %w; finish with: %s", errors.Join(errs...), finishCommand(r.plan.Server, left)), errext.Redis)
}

// finishCommand is the shell command that deletes what a failed cleanup
// left, its password not shown.
func finishCommand(srv *redisenv.Server, patterns []string) string {
	u := srv.Redacted()
	var parts []string
	for _, p := range patterns {
		parts = append(parts, fmt.Sprintf("redis-cli -u '%s' --scan --pattern '%s' | xargs -r redis-cli -u '%s' unlink", u, p, u))
	}
	return strings.Join(parts, "; ")
}
