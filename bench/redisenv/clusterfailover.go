package redisenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// An agreed failover is asked for at most agreedAttempts times, each
// given agreedWait to complete (Redis aborts one after 5 s).
const (
	agreedAttempts = 3
	agreedWait     = 12 * time.Second
)

// failoverSettleTimeout bounds the wait for a cluster to agree on a
// promoted replica, and for a stopped master to come back as a replica.
const failoverSettleTimeout = 45 * time.Second

// Failover is what a failover did.
type Failover struct {
	// Master is the address of the master that was replaced; Replica the
	// address of its replica, promoted in its place.
	Master, Replica string
	// Forced: the master was stopped and the replica took over without
	// its agreement (CLUSTER FAILOVER TAKEOVER); otherwise the two
	// agreed (CLUSTER FAILOVER), the replica catching up first.
	Forced bool
	// Promoted is how long the promotion took, from the command to every
	// reachable node seeing the replica as a master.
	Promoted time.Duration
	// Attempts counts the CLUSTER FAILOVER commands an agreed failover
	// took (Redis aborts one whose replica does not catch up in time).
	Attempts int
}

// String describes the failover for a fault log.
func (f Failover) String() string {
	how := "CLUSTER FAILOVER"
	if f.Forced {
		how = "SIGSTOP of the master, CLUSTER FAILOVER TAKEOVER, SIGCONT"
	}
	if f.Replica == "" {
		return how
	}
	if f.Attempts > 1 {
		how += fmt.Sprintf(" (%d attempts)", f.Attempts)
	}
	return fmt.Sprintf("%s: replica %s promoted in place of %s in %s", how, f.Replica, f.Master, f.Promoted.Round(time.Millisecond))
}

// FailOver promotes the replica of the master that holds most keys
// matching the first of patterns that matches any, and waits until every
// reachable node sees it as a master with cluster_state:ok.
//
// The replica chosen is one in sync with its master (FailOver waits for
// one). Not forced, it sends CLUSTER FAILOVER to the replica: the master
// stops its clients, the replica catches up with its replication offset,
// and only then takes over — no acknowledged write is lost by design;
// Redis aborts such a failover when the replica does not catch up within
// 5 s, and FailOver then asks again (agreedAttempts times in all).
//
// Forced (a spawned cluster only), it stops the master's process
// (SIGSTOP), as a hung or partitioned master would be, has the replica
// take over at once (CLUSTER FAILOVER TAKEOVER: no agreement of the
// master or of the other masters), waits until the other nodes agree,
// then resumes the old master (SIGCONT), which finds itself replaced and
// rejoins as a replica of the new one, dropping whatever its replica had
// not received: writes it had acknowledged are lost. Either way, FailOver
// returns once every node sees the old master as the new one's replica
// and it is in sync, so that the cluster is whole for what comes next.
func (s *Server) FailOver(ctx context.Context, forced bool, patterns ...string) (Failover, error) {
	var fo Failover
	fo.Forced = forced
	h, err := s.hotMaster(ctx, patterns)
	defer h.close()
	if err != nil {
		return fo, fmt.Errorf("failover: %w", err)
	}
	master := h.masters[h.src]
	fo.Master = master.Addr
	replica, err := s.replicaOf(ctx, h, master)
	if err != nil {
		return fo, fmt.Errorf("failover: %w", err)
	}
	fo.Replica = replica.Addr
	rc := h.clients[replica.Addr]
	if rc == nil {
		return fo, fmt.Errorf("failover: no client for replica %s", replica.Addr)
	}
	// Every node but a stopped master must come to see the replica as a
	// master.
	var watch []*redis.Client
	for addr, c := range h.clients {
		if !forced || addr != master.Addr {
			watch = append(watch, c)
		}
	}
	start := time.Now()
	if !forced {
		// Redis aborts a manual failover whose replica does not catch up
		// within 5 s (a loaded machine): ask again, a few times.
		var err error
		for fo.Attempts = 1; fo.Attempts <= agreedAttempts; fo.Attempts++ {
			if err = rc.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
				return fo, fmt.Errorf("failover: CLUSTER FAILOVER on %s: %w", replica.Addr, err)
			}
			wctx, cancel := context.WithTimeout(ctx, agreedWait)
			err = waitPromoted(wctx, watch, replica.ID, "")
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
		}
		fo.Attempts = min(fo.Attempts, agreedAttempts)
		if err != nil {
			fo.Promoted = time.Since(start)
			return fo, fmt.Errorf("failover: %d CLUSTER FAILOVER attempts: %w", fo.Attempts, err)
		}
		fo.Promoted = time.Since(start)
		// The old master is now the new one's replica: wait until every
		// node says so and it is in sync, so that the cluster is whole
		// for what comes next.
		return fo, waitRejoined(ctx, h, replica.ID, master)
	}
	p := s.nodeProcess(master.Addr)
	if p == nil {
		return fo, fmt.Errorf("failover: master %s is not a node paybench spawned; a forced failover stops the master's process", master.Addr)
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fo, fmt.Errorf("failover: SIGSTOP %d: %w", pid, err)
	}
	resumed := false
	resume := func() error {
		if resumed {
			return nil
		}
		resumed = true
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			return fmt.Errorf("failover: SIGCONT %d: %w", pid, err)
		}
		return nil
	}
	if err := rc.Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
		return fo, errors.Join(fmt.Errorf("failover: CLUSTER FAILOVER TAKEOVER on %s: %w", replica.Addr, err), resume())
	}
	if err := waitPromoted(ctx, watch, replica.ID, ""); err != nil {
		fo.Promoted = time.Since(start)
		return fo, errors.Join(err, resume())
	}
	fo.Promoted = time.Since(start)
	if err := resume(); err != nil {
		return fo, err
	}
	// The old master rejoins as the new master's replica.
	return fo, waitRejoined(ctx, h, replica.ID, master)
}

// replicaOf returns a healthy replica of master, as master itself and
// every other node see it, waiting (at most failoverSettleTimeout) for one
// to be in sync: a replica that just rejoined after an earlier failover
// may still be loading its copy.
func (s *Server) replicaOf(ctx context.Context, h hot, master Node) (Node, error) {
	ctx, cancel := context.WithTimeout(ctx, failoverSettleTimeout)
	defer cancel()
	why := ""
	for {
		topo, err := s.Topology(ctx)
		if err != nil {
			why = err.Error()
		} else {
			why = "no replica of " + master.Addr + " in CLUSTER NODES"
			for _, n := range topo {
				if n.Role != "replica" || n.MasterID != master.ID || n.Failed {
					continue
				}
				c := h.clients[n.Addr]
				if c == nil {
					why = "no client for replica " + n.Addr
					continue
				}
				if why = replicaInSync(ctx, c, master.ID); why == "" {
					return n, nil
				}
				why = n.Addr + ": " + why
			}
		}
		select {
		case <-ctx.Done():
			return Node{}, fmt.Errorf("master %s has no healthy replica within %s (%s)", master.Addr, failoverSettleTimeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// replicaInSync says why the node c is not an in-sync replica of the
// master masterID ("": it is).
func replicaInSync(ctx context.Context, c *redis.Client, masterID string) string {
	repl, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err.Error()
	}
	if infoField(repl, "role") != "slave" || infoField(repl, "master_link_status") != "up" || infoField(repl, "master_sync_in_progress") == "1" {
		return "not an in-sync replica yet (role:" + infoField(repl, "role") + ", master_link_status:" + infoField(repl, "master_link_status") + ")"
	}
	raw, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return err.Error()
	}
	for line := range strings.SplitSeq(raw, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.Contains(f[2], "myself") {
			continue
		}
		if f[3] == masterID {
			return ""
		}
		return "lists itself as a replica of " + shortID(f[3]) + ", not of " + shortID(masterID)
	}
	return "has no myself line in CLUSTER NODES"
}

// waitRejoined waits, at most failoverSettleTimeout, until every node
// sees the node newID as a master with slots and the old master as its
// replica, cluster_state:ok everywhere, and the old master in sync.
func waitRejoined(ctx context.Context, h hot, newID string, old Node) error {
	var all []*redis.Client
	for _, c := range h.clients {
		all = append(all, c)
	}
	if err := waitPromoted(ctx, all, newID, old.ID); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, failoverSettleTimeout)
	defer cancel()
	for {
		why := replicaInSync(ctx, h.clients[old.Addr], newID)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("failover: the old master %s did not rejoin as a replica within %s (%s)", old.Addr, failoverSettleTimeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeProcess returns the spawned process listening on addr (nil: none).
func (s *Server) nodeProcess(addr string) *process {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	for _, p := range s.nodes {
		if strconv.Itoa(p.port) == port {
			return p
		}
	}
	return nil
}

// waitPromoted polls nodes until each reports cluster_state:ok and lists
// the node newID as a master with slots in CLUSTER NODES; with oldID, also
// the node oldID as newID's replica, not flagged failing. Bounded by
// failoverSettleTimeout.
func waitPromoted(ctx context.Context, nodes []*redis.Client, newID, oldID string) error {
	ctx, cancel := context.WithTimeout(ctx, failoverSettleTimeout)
	defer cancel()
	for {
		why := ""
		for _, c := range nodes {
			if why = promotedOn(ctx, c, newID, oldID); why != "" {
				why = c.Options().Addr + ": " + why
				break
			}
		}
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("failover: the cluster did not settle within %s (%s)", failoverSettleTimeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// promotedOn says why one node does not see the failover done yet ("":
// it does).
func promotedOn(ctx context.Context, c *redis.Client, newID, oldID string) string {
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return err.Error()
	}
	if st := infoField(info, "cluster_state"); st != "ok" {
		return "cluster_state:" + st
	}
	raw, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return err.Error()
	}
	promoted, demoted := false, oldID == ""
	for _, n := range parseClusterNodes(raw) {
		switch {
		case n.ID == newID && n.Role == "master" && len(n.Slots) > 0:
			promoted = true
		case n.ID == oldID && n.Role == "replica" && n.MasterID == newID && !n.Failed:
			demoted = true
		}
	}
	switch {
	case !promoted:
		return "does not list " + shortID(newID) + " as a master with slots yet"
	case !demoted:
		return "does not list " + shortID(oldID) + " as its replica yet"
	}
	return ""
}

// shortID abbreviates a node id for messages.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return strings.TrimSpace(id)
}
