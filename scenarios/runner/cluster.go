package runner

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/reports/result"
)

// topologyTimeout bounds reading a cluster's topology or key counts.
const topologyTimeout = 10 * time.Second

// serverFacts describes the server for the fairness block, its password
// redacted; on a cluster with its topology at the end of the run.
func (r *run) serverFacts(ctx context.Context) result.Server {
	f := serverFacts(r.plan.Server)
	if !r.plan.Server.Cluster {
		return f
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), topologyTimeout)
	defer cancel()
	nodes, err := r.plan.Server.Topology(cctx)
	if err != nil {
		return f
	}
	for _, n := range nodes {
		f.Nodes = append(f.Nodes, result.ClusterNode{ID: n.ID, Addr: n.Addr, Role: n.Role, MasterID: n.MasterID, Slots: n.Slots, Failed: n.Failed})
	}
	return f
}

// commandsPerMaster reads each master's INFO stats
// total_commands_processed, by address; nil on one server or when a
// master would not say.
func (r *run) commandsPerMaster(ctx context.Context) map[string]int64 {
	if !r.plan.Server.Cluster {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), topologyTimeout)
	defer cancel()
	var mu sync.Mutex
	out := map[string]int64{}
	err := redisenv.ForEachMaster(cctx, r.plan.Server.Admin(), func(ctx context.Context, node *redis.Client) error {
		info, err := node.Info(ctx, "stats").Result()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(infoValue(info, "total_commands_processed"), 10, 64)
		if err != nil {
			return err
		}
		mu.Lock()
		out[node.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil
	}
	return out
}

// infoValue returns the value of one "name:value" line of an INFO reply.
func infoValue(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// clusterKeys records, on a cluster, how many of the newest cell
// keyspace's keys each master holds (Cell.ClusterKeys), and of its stock
// keys (Cell.ClusterStockKeys). A prefix is checked by impl.NewKeyspace to
// hold no glob character, so it is its own SCAN pattern.
//
// It also records the commands each master processed during the cell
// (Cell.ClusterCommands): the change of its total_commands_processed
// since m was taken, paybench's own few reads included.
func (r *run) clusterKeys(ctx context.Context, c result.Cell, m serverMark) result.Cell {
	if !r.plan.Server.Cluster || len(r.cellKeys) == 0 {
		return c
	}
	if m.commands != nil {
		after := r.commandsPerMaster(ctx)
		for addr, n := range after {
			if before, ok := m.commands[addr]; ok && n >= before {
				if c.ClusterCommands == nil {
					c.ClusterCommands = map[string]int64{}
				}
				c.ClusterCommands[addr] = n - before
			}
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), topologyTimeout)
	defer cancel()
	ks := r.cellKeys[len(r.cellKeys)-1]
	per, err := r.plan.Server.KeysPerMaster(cctx, ks.Pattern())
	if err == nil && len(per) > 0 {
		c.ClusterKeys = per
	}
	// The stock family's keys are prefix + "stock:{item}..." (impl.StockKey,
	// impl.StockShardKey).
	per, err = r.plan.Server.KeysPerMaster(cctx, ks.Prefix()+"stock:*")
	if err == nil && len(per) > 0 {
		c.ClusterStockKeys = per
	}
	return c
}
