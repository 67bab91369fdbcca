package goredis

import (
	"context"
	"fmt"
	"net"
	"strconv"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/wiretap"
)

// openCluster is Open for a Redis Cluster (cfg.Cluster): cfg.URL is read
// by redis.ParseClusterURL (its host and addr= query parameters are seed
// addresses), and the same settings as a single client's are applied to a
// redis.ClusterClient (commonOptions, TLS included), which discovers the
// masters and their slots, routes each command to its key's master and follows MOVED and ASK
// redirections within MaxRedirects. Reads go to masters (no ReadOnly,
// RouteByLatency or RouteRandomly): a correctness harness reads what it
// wrote.
//
// go-redis's cluster client spends the same MaxRedirects budget on
// re-sending a command after a network error or a time-out, whatever the
// node clients' MaxRetries say, and offers no setting that separates the
// two. A MOVED or ASK reply means the command did not run, so following
// it is always safe; re-sending after a lost reply is not (a DECRBY may
// apply twice). With paybench's default of no re-sends, every node
// client's connections are therefore wrapped (wiretap, through a DialHook
// installed by ClusterOptions.NewClient) so that a connection's read or
// write failure is final: go-redis's retry test does not recognise it and
// surfaces it, while MOVED, ASK, TRYAGAIN, CLUSTERDOWN and LOADING — replies
// of a server that did not run the command — are still followed or
// retried within MaxRedirects (go-redis's default of 3). With
// --client-retries library or N, go-redis re-sends as it would (N sets
// MaxRetries and MaxRedirects). cfg.Redirects, when set, counts the
// MOVED and ASK replies on the same connections.
func openCluster(ctx context.Context, cfg impl.ConnConfig, retries impl.Retries, from string) (*Client, error) {
	opt, err := redis.ParseClusterURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse cluster URL: %w", err)
	}
	set, err := urlParams(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse URL: %w", err)
	}
	if err := clusterOptions(opt).apply(cfg, set); err != nil {
		return nil, err
	}
	final := false
	switch {
	case retries.Library():
		opt.MaxRetries = 0   // go-redis's default
		opt.MaxRedirects = 0 // go-redis's default (3)
	case retries.Count() == 0:
		opt.MaxRetries = -1 // no retries
		opt.MaxRedirects = clusterRedirects
		final = true // ... and no re-sends after a lost connection
	default:
		opt.MaxRetries = retries.Count()
		opt.MaxRedirects = retries.Count()
	}
	tap := wiretap.Options{Counter: cfg.Redirects, Final: final}
	nodes := &nodeClients{}
	opt.NewClient = func(o *redis.Options) *redis.Client {
		c := redis.NewClient(o)
		c.AddHook(tapHook(tap))
		nodes.add(o.Addr, c)
		return c
	}

	rdb := redis.NewClusterClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("goredis: connect to cluster %v: %w", opt.Addrs, err)
	}
	return &Client{rdb: rdb, retries: retries, retriesFrom: from, finalConns: final, wait: cfg.WaitSetting(), nodes: nodes}, nil
}

// clusterRedirects is how many MOVED, ASK, TRYAGAIN or CLUSTERDOWN replies
// in a row the cluster client follows or waits out for one command under
// paybench's default of no re-sends (go-redis's own default).
const clusterRedirects = 3

// tapHook is a go-redis hook that wraps every connection a node client
// dials (wiretap.Wrap); commands pass through untouched.
type tapHook wiretap.Options

func (h tapHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wiretap.Wrap(c, wiretap.Options(h)), nil
	}
}

func (tapHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (tapHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// clusterSettings is Settings of a cluster client: the single client's
// keys (pool_size is per node) and its routing settings.
func (c *Client) clusterSettings(cc *redis.ClusterClient) map[string]string {
	o := cc.Options()
	retries := strconv.Itoa(o.MaxRetries)
	if c.retries.Library() {
		retries = fmt.Sprintf("library (%d)", o.MaxRetries)
	}
	retried, resends := impl.RetriedNone, "none: a lost connection's failure is final (MOVED/ASK/TRYAGAIN still followed)"
	if !c.finalConns && (o.MaxRetries > 0 || o.MaxRedirects > 0) {
		retried = impl.RetriedAll
		resends = "after a network error or time-out, within cluster_max_redirects"
	}
	switch {
	case c.finalConns:
		retries = "0"
	case !c.retries.Library():
		retries = strconv.Itoa(o.MaxRedirects)
	}
	set := clusterOptions(o).settings()
	for k, v := range map[string]string{
		"pool_size":                 strconv.Itoa(o.PoolSize) + " per node",
		impl.SettingRetries:         retries,
		impl.SettingRetriesFrom:     c.retriesFrom,
		impl.SettingRetriedCommands: retried,
		impl.SettingCluster:         "ClusterClient",
		"cluster_max_redirects":     strconv.Itoa(o.MaxRedirects),
		"cluster_resends":           resends,
		"cluster_routing":           clusterRouting(o),
		// The routing options as built (ClusterOptions), one each.
		"cluster_read_only":        strconv.FormatBool(o.ReadOnly),
		"cluster_route_by_latency": strconv.FormatBool(o.RouteByLatency),
		"cluster_route_randomly":   strconv.FormatBool(o.RouteRandomly),
	} {
		set[k] = v
	}
	return c.wait.Settings(set)
}

// clusterRouting names where a cluster client sends reads.
func clusterRouting(o *redis.ClusterOptions) string {
	switch {
	case o.RouteByLatency:
		return "reads by latency (replicas too)"
	case o.RouteRandomly:
		return "reads at random (replicas too)"
	case o.ReadOnly:
		return "reads on replicas"
	}
	return "every command on its key's master"
}
