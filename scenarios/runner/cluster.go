package runner

import (
	"context"
	"time"

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

// clusterKeys records, on a cluster, how many of the newest cell
// keyspace's keys each master holds (Cell.ClusterKeys), and of its stock
// keys (Cell.ClusterStockKeys). A prefix is checked by impl.NewKeyspace to
// hold no glob character, so it is its own SCAN pattern.
func (r *run) clusterKeys(ctx context.Context, c result.Cell) result.Cell {
	if !r.plan.Server.Cluster || len(r.cellKeys) == 0 {
		return c
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
