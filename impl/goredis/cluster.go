package goredis

import (
	"context"
	"fmt"
	"strconv"

	redis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/paybench/paybench/impl"
)

// openCluster is Open for a Redis Cluster (cfg.Cluster): cfg.URL is read
// by redis.ParseClusterURL (its host and addr= query parameters are seed
// addresses), and the same settings as a single client's are applied to a
// redis.ClusterClient, which discovers the masters and their slots,
// routes each command to its key's master and follows MOVED and ASK
// redirections within MaxRedirects, which is also its budget of re-sends
// after a network error: paybench's retry setting sets it (none by
// default: MOVED and ASK are then surfaced as errors). Reads go
// to masters (no ReadOnly, RouteByLatency or RouteRandomly): a
// correctness harness reads what it wrote.
func openCluster(ctx context.Context, cfg impl.ConnConfig, retries impl.Retries, from string) (*Client, error) {
	opt, err := redis.ParseClusterURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse cluster URL: %w", err)
	}
	set, err := urlParams(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse URL: %w", err)
	}
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	if cfg.PoolSize > 0 {
		opt.PoolSize = cfg.PoolSize // per node
	}
	if cfg.ClientName != "" {
		opt.ClientName = cfg.ClientName
	} else if opt.ClientName == "" {
		opt.ClientName = impl.DefaultClientName(impl.GoRedis)
	}
	switch {
	case cfg.DialTimeout > 0:
		opt.DialTimeout = cfg.DialTimeout
	case !set["dial_timeout"]:
		opt.DialTimeout = DialTimeout
	}
	switch {
	case cfg.ReadTimeout > 0:
		opt.ReadTimeout = cfg.ReadTimeout
		opt.WriteTimeout = cfg.ReadTimeout
	default:
		if !set["read_timeout"] {
			opt.ReadTimeout = ReadTimeout
		}
		if !set["write_timeout"] {
			opt.WriteTimeout = WriteTimeout
		}
	}
	// go-redis's cluster client re-sends a command after a network error
	// or a time-out within the same budget as it follows MOVED and ASK
	// (MaxRedirects, default 3), whatever the node clients' MaxRetries: the
	// retry setting therefore sets both. With paybench's default of no
	// re-sends, a MOVED or ASK reply is surfaced as an error (and the
	// client reloads its slot map, so that the next command goes right).
	switch {
	case retries.Library():
		opt.MaxRetries = 0   // go-redis's default
		opt.MaxRedirects = 0 // go-redis's default (3)
	case retries.Count() == 0:
		opt.MaxRetries = -1   // no retries
		opt.MaxRedirects = -1 // no re-sends, no redirections followed
	default:
		opt.MaxRetries = retries.Count()
		opt.MaxRedirects = retries.Count()
	}
	if opt.DialerRetries <= 0 {
		opt.DialerRetries = 1
	}
	opt.ContextTimeoutEnabled = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	rdb := redis.NewClusterClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("goredis: connect to cluster %v: %w", opt.Addrs, err)
	}
	return &Client{rdb: rdb, retries: retries, retriesFrom: from}, nil
}

// clusterSettings is Settings of a cluster client: the single client's
// keys (pool_size is per node) and its routing settings.
func (c *Client) clusterSettings(cc *redis.ClusterClient) map[string]string {
	o := cc.Options()
	retries := strconv.Itoa(o.MaxRetries)
	if c.retries.Library() {
		retries = fmt.Sprintf("library (%d)", o.MaxRetries)
	}
	retried := impl.RetriedNone
	if o.MaxRetries > 0 || o.MaxRedirects > 0 {
		retried = impl.RetriedAll
	}
	if !c.retries.Library() {
		retries = strconv.Itoa(o.MaxRedirects)
	}
	return map[string]string{
		"library":                   "github.com/redis/go-redis/v9 v" + redis.Version(),
		"client_name":               o.ClientName,
		"pool_size":                 strconv.Itoa(o.PoolSize) + " per node",
		"pipeline_pool_size":        strconv.Itoa(o.PipelinePoolSize),
		"protocol":                  strconv.Itoa(o.Protocol),
		impl.SettingRetries:         retries,
		impl.SettingRetriesFrom:     c.retriesFrom,
		impl.SettingRetriedCommands: retried,
		"retry_backoff":             o.MinRetryBackoff.String() + ".." + o.MaxRetryBackoff.String(),
		impl.SettingDialTimeout:     o.DialTimeout.String(),
		impl.SettingReadTimeout:     o.ReadTimeout.String(),
		"write_timeout":             o.WriteTimeout.String(),
		"context_timeouts":          strconv.FormatBool(o.ContextTimeoutEnabled),
		impl.SettingCluster:         "ClusterClient",
		"cluster_max_redirects":     strconv.Itoa(o.MaxRedirects),
		"cluster_routing":           clusterRouting(o),
		// The routing options as built (ClusterOptions), one each.
		"cluster_read_only":        strconv.FormatBool(o.ReadOnly),
		"cluster_route_by_latency": strconv.FormatBool(o.RouteByLatency),
		"cluster_route_randomly":   strconv.FormatBool(o.RouteRandomly),
	}
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
