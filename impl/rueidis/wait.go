package rueidis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// waiter sends a stock strategy's write and then WAIT on one connection
// (impl.ConnConfig.WaitReplicas). WAIT counts the replicas that
// acknowledged the writes of the connection it is sent on, so it must
// follow the write on the write's own connection: both go, in one
// DoMulti, on a dedicated connection (Client.Dedicated) to the write's
// master — on a cluster client, the master of the script's slot (WAIT has
// no key and goes with it). The plain cluster client's DoMulti would also
// put a keyless WAIT with the script's slot, but after a MOVED it re-sends
// the script alone to the new master, and the WAIT's answer would be the
// old node's; a dedicated connection surfaces the MOVED instead, and the
// pair is sent again to the node it names (Client.Nodes), at most
// impl.WaitRedirects times. An ASK (a slot being migrated) is surfaced as
// the failure it is.
type waiter struct {
	rc   rd.Client
	wait impl.WaitSetting
}

// on reports whether a WAIT follows the writes.
func (w *waiter) on() bool { return w != nil && w.wait.On() }

// evalScript is a script's source and SHA1, for sending EVALSHA or EVAL
// in a DoMulti (rueidis.Lua sends them alone).
type evalScript struct{ src, sha string }

func newEvalScript(src string) evalScript {
	h := sha1.Sum([]byte(src))
	return evalScript{src: src, sha: hex.EncodeToString(h[:])}
}

// waitScripts are the sources of the scripts a waiter sends.
var waitScripts = map[*rd.Lua]evalScript{
	stockDeductScript:           newEvalScript(scripts.StockDeduct),
	stockShardDeductScript:      newEvalScript(scripts.StockShardDeduct),
	stockShardedDeductAllScript: newEvalScript(scripts.StockShardedDeductAll),
	stockPurchasePlainScript:    newEvalScript(scripts.StockPurchasePlain),
	stockPurchaseScript:         newEvalScript(scripts.StockPurchase),
	stockShardedPurchaseScript:  newEvalScript(scripts.StockShardedPurchase),
	stockSlotTakeScript:         newEvalScript(scripts.StockSlotTake),
}

// script runs lua (EVALSHA, EVAL on NOSCRIPT) and WAIT right after it on
// one connection of the keys' master; it returns the script's integer
// reply and whether WAIT confirmed it (always true when no WAIT is sent:
// then it is lua.Exec on rc; w may be nil).
func (w *waiter) script(ctx context.Context, rc rd.Client, lua *rd.Lua, keys, args []string) ([]int64, bool, error) {
	if !w.on() {
		res, err := lua.Exec(ctx, rc, keys, args).AsIntSlice()
		return res, true, err
	}
	es, ok := waitScripts[lua]
	if !ok {
		return nil, false, fmt.Errorf("rueidis: WAIT after a write: a script the waiter does not know")
	}
	node := rc
	eval := false
	for redirects := 0; ; {
		var resps []rd.RedisResult
		err := node.Dedicated(func(dc rd.DedicatedClient) error {
			var run rd.Completed
			if eval {
				run = dc.B().Eval().Script(es.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
			} else {
				run = dc.B().Evalsha().Sha1(es.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
			}
			wait := dc.B().Wait().Numreplicas(int64(w.wait.Replicas)).Timeout(w.wait.Millis()).Build()
			resps = dc.DoMulti(ctx, run, wait)
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		res, err := resps[0].AsIntSlice()
		if err != nil {
			rerr, isRedis := rd.IsRedisErr(err)
			if !isRedis {
				return nil, false, err
			}
			if !eval && rerr.IsNoScript() {
				eval = true // the script did not run: send its source
				continue
			}
			addr, moved := rerr.IsMoved()
			if !moved {
				return nil, false, err
			}
			if redirects >= impl.WaitRedirects {
				return nil, false, fmt.Errorf("%d redirections followed, and then: %w", redirects, err)
			}
			// The script did not run: its slot has moved to addr.
			redirects++
			if node = nodeAt(ctx, rc, addr); node == nil {
				return nil, false, fmt.Errorf("MOVED to %s, a node the cluster client did not learn of in %v: %w", addr, impl.MovedWait, err)
			}
			continue
		}
		acked, werr := resps[1].AsInt64()
		if werr != nil {
			// The write happened; its replication is not known.
			return res, false, nil
		}
		return res, w.wait.Confirmed(acked), nil
	}
}

// nodeAt returns the client of the node at addr, which a MOVED named.
// rueidis's cluster client learns of a node (a replica just promoted) at
// its next topology refresh, which the MOVED set off: until then, it is
// asked again (impl.AwaitNode); nil if it never learns.
func nodeAt(ctx context.Context, rc rd.Client, addr string) rd.Client {
	n, _ := impl.AwaitNode(ctx, func() (rd.Client, bool) {
		n := rc.Nodes()[addr]
		return n, n != nil
	}, nil)
	return n
}

// deduct is execDeduct on rc (w may be nil) with the WAIT: the script's
// {ok, remaining[, replayed]} decoded, Unconfirmed set on an answer OK
// that WAIT did not confirm.
func (w *waiter) deduct(ctx context.Context, rc rd.Client, lua *rd.Lua, keys []string, qty int64, id ...string) (impl.Deduction, error) {
	if !w.on() {
		return execDeduct(ctx, rc, lua, keys, qty, id...)
	}
	res, confirmed, err := w.script(ctx, rc, lua, keys, append([]string{strconv.FormatInt(qty, 10)}, id...))
	if err != nil {
		return impl.Deduction{}, err
	}
	return impl.DecodeWaitedDeduction(res, confirmed)
}
