package goredis

import (
	"context"
	"fmt"
	"sync"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// waiter sends a stock strategy's write and then WAIT on one connection
// (impl.ConnConfig.WaitReplicas). WAIT counts the replicas that
// acknowledged the writes of the connection it is sent on, so it must
// follow the write on the write's own connection:
//
//   - on one server, a pipeline of the redis.Client: go-redis sends a
//     pipeline's commands on one connection;
//   - on a Redis Cluster, not ClusterClient.Wait nor a WAIT in a
//     ClusterClient pipeline: WAIT has no key, and go-redis (v9.23) sends
//     a keyless command by its COMMAND tips (WAIT's request_policy is
//     all_shards: to every master, the smallest answer kept) and refuses
//     it in a pipeline. The pipeline goes instead to the node client of
//     the key's master (ClusterClient.MasterForKey), one connection. A
//     MOVED reply (the write did not run) is followed by hand to the node
//     it names, at most impl.WaitRedirects times; an ASK (a slot being
//     migrated) is surfaced as the failure it is.
type waiter struct {
	rdb   redis.UniversalClient
	wait  impl.WaitSetting
	nodes *nodeClients
}

// nodeClients are a cluster client's node clients by address, as
// ClusterOptions.NewClient made them.
type nodeClients struct{ m sync.Map }

func (n *nodeClients) add(addr string, c *redis.Client) { n.m.Store(addr, c) }

func (n *nodeClients) get(addr string) *redis.Client {
	if v, ok := n.m.Load(addr); ok {
		return v.(*redis.Client)
	}
	return nil
}

// on reports whether a WAIT follows the writes.
func (w *waiter) on() bool { return w != nil && w.wait.On() }

// node returns the client whose connections reach key's master.
func (w *waiter) node(ctx context.Context, key string) (*redis.Client, error) {
	switch c := w.rdb.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	}
	return nil, fmt.Errorf("goredis: WAIT after a write: unexpected client %T", w.rdb)
}

// script runs script (EVALSHA, EVAL on NOSCRIPT) on keys' master and WAIT
// right after it on the same connection; it returns the script's integer
// reply and whether WAIT confirmed it (always true when no WAIT is sent:
// then it is script.Run on rdb; w may be nil).
func (w *waiter) script(ctx context.Context, rdb redis.Scripter, script *redis.Script, keys []string, args ...any) ([]int64, bool, error) {
	if !w.on() {
		res, err := script.Run(ctx, rdb, keys, args...).Int64Slice()
		return res, true, err
	}
	node, err := w.node(ctx, keys[0])
	if err != nil {
		return nil, false, err
	}
	eval := false
	for redirects := 0; ; {
		var run *redis.Cmd
		var wait *redis.IntCmd
		_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			if eval {
				run = script.Eval(ctx, p, keys, args...)
			} else {
				run = script.EvalSha(ctx, p, keys, args...)
			}
			wait = redis.NewIntCmd(ctx, "wait", w.wait.Replicas, w.wait.Millis())
			return p.Process(ctx, wait)
		})
		res, err := run.Int64Slice()
		if err != nil {
			if !eval && redis.HasErrorPrefix(err, "NOSCRIPT") {
				eval = true // the script did not run: send its source
				continue
			}
			addr, moved := redis.IsMovedError(err)
			if !moved || w.nodes == nil {
				return nil, false, err
			}
			if redirects >= impl.WaitRedirects {
				return nil, false, fmt.Errorf("%d redirections followed, and then: %w", redirects, err)
			}
			// The script did not run: its slot has moved to addr.
			redirects++
			if node = w.nodeAt(ctx, addr); node == nil {
				return nil, false, fmt.Errorf("MOVED to %s, a node the cluster client did not learn of in %v: %w", addr, impl.MovedWait, err)
			}
			continue
		}
		acked, werr := wait.Result()
		if werr != nil {
			// The write happened; its replication is not known.
			return res, false, nil
		}
		return res, w.wait.Confirmed(acked), nil
	}
}

// nodeAt returns the node client of addr, the node a MOVED named. The
// cluster client makes a node's client when its slot map names the node
// (a replica just promoted may not be there yet): until it does, the map
// is reloaded (impl.AwaitNode); nil if it never does.
func (w *waiter) nodeAt(ctx context.Context, addr string) *redis.Client {
	cc, ok := w.rdb.(*redis.ClusterClient)
	if !ok {
		return w.nodes.get(addr)
	}
	n, _ := impl.AwaitNode(ctx, func() (*redis.Client, bool) {
		n := w.nodes.get(addr)
		return n, n != nil
	}, func() { cc.ReloadState(ctx) })
	return n
}

// deduct is runDeduct on rdb (w may be nil) with the WAIT: the script's {ok, remaining[,
// replayed]} decoded, Unconfirmed set on an answer OK that WAIT did not
// confirm.
func (w *waiter) deduct(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, keys []string, qty int64, id ...any) (impl.Deduction, error) {
	if !w.on() {
		return runDeduct(ctx, rdb, script, keys, qty, id...)
	}
	res, confirmed, err := w.script(ctx, rdb, script, keys, append([]any{qty}, id...)...)
	if err != nil {
		return impl.Deduction{}, err
	}
	return impl.DecodeWaitedDeduction(res, confirmed)
}
