package redisenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// KindCluster spawns a local Redis Cluster: ClusterMasters masters, each
// with one replica, on free loopback ports. The auto chain never picks it.
const KindCluster Kind = "cluster"

// Shape and bounds of a spawned cluster.
const (
	// ClusterMasters is how many masters a spawned cluster has; each has
	// one replica.
	ClusterMasters = 3
	// clusterNodeTimeout is the spawned nodes' cluster-node-timeout, in
	// milliseconds: how long a master may not answer before its replica
	// takes over. Generous, so that a loaded, shared machine does not fail
	// over on its own.
	clusterNodeTimeout = 15000
	// clusterCreateTimeout bounds `redis-cli --cluster create`.
	clusterCreateTimeout = time.Minute
	// clusterReadyTimeout bounds the wait for every node to report
	// cluster_state:ok and every replica to be in sync.
	clusterReadyTimeout = time.Minute
)

// redisCLIBinary is the program that creates a spawned cluster.
const redisCLIBinary = "redis-cli"

// Node is one node of a Redis Cluster as CLUSTER NODES reports it.
type Node struct {
	// ID is the node's cluster id.
	ID string `json:"id"`
	// Addr is host:port of its clients' port.
	Addr string `json:"addr"`
	// Role is "master" or "replica".
	Role string `json:"role"`
	// MasterID is the id of a replica's master ("" for a master).
	MasterID string `json:"master_id,omitempty"`
	// Slots are the slot ranges a master serves, such as "0-5460".
	Slots []string `json:"slots,omitempty"`
	// Failed says the node is flagged fail or pfail.
	Failed bool `json:"failed,omitempty"`
}

// spawnCluster starts 2×ClusterMasters redis-servers with cluster-enabled,
// joins them into a cluster with redis-cli (one replica per master), waits
// until every node reports cluster_state:ok and every replica is in sync,
// and checks it through a cluster admin client. Every node is stopped by
// Close, and dies with paybench (Pdeathsig) when it dies first.
func spawnCluster(ctx context.Context, o Options) (*Server, error) {
	bin, err := exec.LookPath(redisServerBinary)
	if err != nil {
		return nil, fmt.Errorf("spawn cluster: %w: no %s on PATH", ErrUnavailable, redisServerBinary)
	}
	cli, err := exec.LookPath(redisCLIBinary)
	if err != nil {
		return nil, fmt.Errorf("spawn cluster: %w: no %s on PATH (it creates the cluster)", ErrUnavailable, redisCLIBinary)
	}
	major := redisServerMajor(ctx, bin)
	if major != 0 && major < 7 {
		return nil, fmt.Errorf("spawn cluster: %w: %s %d is older than 7.0 (paybench gives each node its own --cluster-port)", ErrUnavailable, redisServerBinary, major)
	}
	procs := make([]*process, 0, 2*ClusterMasters)
	stopAll := func() error {
		var wg sync.WaitGroup
		errs := make([]error, len(procs))
		for i, p := range procs {
			wg.Go(func() { errs[i] = p.stop() })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	fail := func(err error) (*Server, error) {
		return nil, errors.Join(err, stopAll())
	}
	for range 2 * ClusterMasters {
		p, err := startClusterNode(ctx, bin, major, o.ServerArgs)
		if err != nil {
			return fail(err)
		}
		procs = append(procs, p)
	}
	addrs := make([]string, len(procs))
	for i, p := range procs {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	}
	if err := createCluster(ctx, cli, addrs); err != nil {
		return fail(err)
	}
	if err := waitClusterReady(ctx, addrs, len(procs)); err != nil {
		return fail(err)
	}
	s, err := connectCluster(ctx, KindCluster, clusterURL(addrs, ""), o, stopAll)
	if err != nil {
		return nil, fmt.Errorf("spawned cluster: %w", err)
	}
	s.nodes = procs
	return s, nil
}

// startClusterNode starts one cluster-enabled redis-server on a free port
// with a free cluster bus port, retrying when a port was taken meanwhile.
func startClusterNode(ctx context.Context, bin string, major int, extra []string) (*process, error) {
	var lastErr error
	for range spawnAttempts {
		bus, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("spawn cluster: find a free port: %w", err)
		}
		args := append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
			"--cluster-port", strconv.Itoa(bus),
		}, extra...)
		p, err := startProcess(ctx, bin, major, "", args, 0, "")
		if err == nil {
			return p, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, lastErr
}

// createCluster runs `redis-cli --cluster create ADDRS --cluster-replicas 1
// --cluster-yes`, bounded by clusterCreateTimeout.
func createCluster(ctx context.Context, cli string, addrs []string) error {
	ctx, cancel := context.WithTimeout(ctx, clusterCreateTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if len(tail) > 600 {
			tail = tail[len(tail)-600:]
		}
		return fmt.Errorf("spawn cluster: %s --cluster create: %w: %s", redisCLIBinary, err, oneLine(tail))
	}
	return nil
}

// waitClusterReady polls every node until it reports cluster_state:ok, all
// 16384 slots assigned and want known nodes of which ClusterMasters are
// masters, and every replica reports its master link up; bounded by clusterReadyTimeout.
func waitClusterReady(ctx context.Context, addrs []string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a, Protocol: 2, DisableIdentity: true, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, PoolSize: 1})
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	var why string
	for {
		why = ""
		for i, c := range clients {
			if why = nodeNotReady(ctx, c, want); why != "" {
				why = addrs[i] + ": " + why
				break
			}
		}
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("spawn cluster: %w: the cluster was not ready within %s (%s)", ErrTimeout, clusterReadyTimeout, why)
			}
			return fmt.Errorf("spawn cluster: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// nodeNotReady returns why one node is not ready yet, "" when it is.
func nodeNotReady(ctx context.Context, c *redis.Client, want int) string {
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return err.Error()
	}
	if s := infoField(info, "cluster_state"); s != "ok" {
		return "cluster_state:" + s
	}
	if n := infoField(info, "cluster_slots_assigned"); n != "16384" {
		return "cluster_slots_assigned:" + n
	}
	if n := infoField(info, "cluster_known_nodes"); n != strconv.Itoa(want) {
		return "cluster_known_nodes:" + n
	}
	// A node that redis-cli has not made a replica yet shows as a master
	// without slots: wait until every node sees ClusterMasters masters.
	nodes, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return err.Error()
	}
	masters := 0
	for _, n := range parseClusterNodes(nodes) {
		if n.Role == "master" {
			masters++
		}
	}
	if masters != ClusterMasters {
		return fmt.Sprintf("%d masters in CLUSTER NODES, want %d", masters, ClusterMasters)
	}
	repl, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err.Error()
	}
	if infoField(repl, "role") == "slave" && infoField(repl, "master_link_status") != "up" {
		return "master_link_status:" + infoField(repl, "master_link_status")
	}
	return ""
}

// clusterURL returns the redis:// URL of a cluster's seed addresses: the
// first as host, the others as addr= query parameters, which both
// go-redis's ParseClusterURL and rueidis's ParseURL read.
func clusterURL(addrs []string, password string) string {
	u := url.URL{Scheme: "redis", Host: addrs[0]}
	if password != "" {
		u.User = url.UserPassword("", password)
	}
	if len(addrs) > 1 {
		q := url.Values{}
		for _, a := range addrs[1:] {
			q.Add("addr", a)
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// provideClusterURL connects to a user's Redis Cluster through the seed
// addresses of raw (the host, and any addr= query parameters).
func provideClusterURL(ctx context.Context, raw string, o Options) (*Server, error) {
	_, full, err := parseClusterURL(raw, o.password())
	if err != nil {
		return nil, err
	}
	return connectCluster(ctx, KindURL, full, o, nil)
}

// parseClusterURL parses raw with go-redis's ParseClusterURL and applies an
// explicit password over the URL's. Errors wrap ErrBadURL and never contain
// a password.
func parseClusterURL(raw, password string) (*redis.ClusterOptions, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%w %s: %s", ErrBadURL, Redact(raw), parseReason(err))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, "", fmt.Errorf("%w %s: a cluster's URL must be redis:// or rediss://", ErrBadURL, Redact(raw))
	}
	co, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, "", libraryURLError(raw, password, u, err)
	}
	if password == "" {
		return co, raw, nil
	}
	co.Password = password
	u.User = url.UserPassword(co.Username, password)
	return co, u.String(), nil
}

// connectCluster builds a cluster admin client on fullURL's seeds and
// checks the cluster: PING and INFO server through the cluster client,
// then CLUSTER INFO must say cluster_state:ok. On failure it calls
// release.
func connectCluster(ctx context.Context, kind Kind, fullURL string, o Options, release func() error) (*Server, error) {
	co, _, err := parseClusterURL(fullURL, "")
	if err != nil {
		if release != nil {
			err = errors.Join(err, release())
		}
		return nil, err
	}
	seed := co.Addrs[0]
	if err := dialOnce(ctx, &redis.Options{Network: "tcp", Addr: seed, TLSConfig: co.TLSConfig}, o.DialTimeout); err != nil {
		if release != nil {
			err = errors.Join(err, release())
		}
		return nil, connectError(Redact(fullURL), "dial", err, co.Password)
	}
	s := &Server{
		Kind:     kind,
		URL:      fullURL,
		Password: co.Password,
		Cluster:  true,
		admin:    redis.NewClusterClient(adminClusterOptions(co, o.DialTimeout)),
		release:  release,
	}
	if err := s.check(ctx, o.DialTimeout); err != nil {
		_ = s.Close()
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	info, err := s.admin.ClusterInfo(cctx).Result()
	switch {
	case err != nil:
		_ = s.Close()
		return nil, connectError(s.Redacted(), "CLUSTER INFO", err, s.Password)
	case infoField(info, "cluster_state") != "ok":
		_ = s.Close()
		return nil, &connError{msg: fmt.Sprintf("cluster at %s is not usable: cluster_state:%s", s.Redacted(), infoField(info, "cluster_state")), class: ErrUnreachable}
	}
	s.admin.AddHook(retryReads{})
	return s, nil
}

// adminClusterOptions are adminOptions for a cluster client: the same
// settings, taken from adminOptions so that they cannot drift apart.
func adminClusterOptions(co *redis.ClusterOptions, dialTimeout time.Duration) *redis.ClusterOptions {
	a := adminOptions(&redis.Options{}, dialTimeout)
	c := *co
	c.DialTimeout, c.ReadTimeout, c.WriteTimeout = a.DialTimeout, a.ReadTimeout, a.WriteTimeout
	c.ContextTimeoutEnabled, c.MaxRetries, c.DialerRetries = a.ContextTimeoutEnabled, a.MaxRetries, a.DialerRetries
	c.Protocol, c.DisableIdentity, c.PoolSize, c.ClientName = a.Protocol, a.DisableIdentity, a.PoolSize, a.ClientName
	return &c
}

// ForEachMaster calls fn with a client on each master the admin client
// reaches: the one server of a single-node client, every master of a
// cluster client (concurrently). Commands that have no key (SCAN, INFO,
// CLIENT ...) must go through it to see the whole deployment.
func ForEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("redisenv: unsupported client %T", rdb)
}

// ForEachNode is ForEachMaster over every node, replicas included.
func ForEachNode(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachShard(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("redisenv: unsupported client %T", rdb)
}

// Topology returns the nodes of a cluster as CLUSTER NODES reports them,
// masters first, each group by address; nil for a single server.
func (s *Server) Topology(ctx context.Context) ([]Node, error) {
	if !s.Cluster {
		return nil, nil
	}
	raw, err := s.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES: %w", err)
	}
	return parseClusterNodes(raw), nil
}

// parseClusterNodes reads CLUSTER NODES' reply.
func parseClusterNodes(raw string) []Node {
	var nodes []Node
	for line := range strings.SplitSeq(strings.TrimSpace(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		n := Node{ID: f[0], Addr: f[1]}
		if i := strings.IndexAny(n.Addr, "@,"); i >= 0 {
			n.Addr = n.Addr[:i]
		}
		flags := strings.Split(f[2], ",")
		for _, fl := range flags {
			switch fl {
			case "master":
				n.Role = "master"
			case "slave", "replica":
				n.Role = "replica"
			case "fail", "fail?":
				n.Failed = true
			}
		}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, sl := range f[8:] {
			if !strings.HasPrefix(sl, "[") { // not a migrating/importing mark
				n.Slots = append(n.Slots, sl)
			}
		}
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].Role != nodes[j].Role {
			return nodes[i].Role == "master"
		}
		return nodes[i].Addr < nodes[j].Addr
	})
	return nodes
}

// KeysPerMaster counts the keys matching pattern on each master (SCAN
// MATCH on every master), by master address; nil for a single server.
func (s *Server) KeysPerMaster(ctx context.Context, pattern string) (map[string]int64, error) {
	if !s.Cluster {
		return nil, nil
	}
	var mu sync.Mutex
	out := make(map[string]int64)
	err := ForEachMaster(ctx, s.admin, func(ctx context.Context, node *redis.Client) error {
		var n int64
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, pattern, deleteBatch).Result()
			if err != nil {
				return fmt.Errorf("SCAN %s: %w", node.Options().Addr, err)
			}
			n += int64(len(keys))
			if next == 0 {
				break
			}
			cursor = next
		}
		if n > 0 {
			mu.Lock()
			out[node.Options().Addr] += n
			mu.Unlock()
		}
		return nil
	})
	return out, err
}
