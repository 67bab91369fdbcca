// Package goredis implements paybench's operation contracts on
// github.com/redis/go-redis/v9, idiomatically: typed command methods,
// redis.NewScript for Lua (EVALSHA with EVAL fallback), Client.Watch with
// Tx.TxPipelined for optimistic transactions.
package goredis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	redis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/paybench/paybench/impl"
)

// Defaults applied by Open when neither the ConnConfig nor the URL sets
// them.
const (
	// DialTimeout bounds establishing one connection.
	DialTimeout = 3 * time.Second
	// ReadTimeout bounds waiting for one reply.
	ReadTimeout = 3 * time.Second
	// WriteTimeout bounds writing one command.
	WriteTimeout = 3 * time.Second
)

// Client is one go-redis client connected to one Redis server (a
// redis.Client) or to a Redis Cluster (a redis.ClusterClient). It
// implements impl.Backend and every operation family paybench has; it is
// safe for concurrent use.
type Client struct {
	rdb redis.UniversalClient
	// retries is the retry setting in effect, from retriesFrom (an
	// impl.RetriesFrom* value).
	retries     impl.Retries
	retriesFrom string
	// peers are the other servers of a Redlock deployment
	// (impl.ConnConfig.RedlockURLs), for redsync's pools.
	peers []*redis.Client
	// finalConns: a cluster client whose connection failures are final
	// (no re-sends; see openCluster).
	finalConns bool
	// wait is the WAIT sent after the stock strategies' writes; nodes, a
	// cluster client's node clients by address (for WAIT's redirections).
	wait  impl.WaitSetting
	nodes *nodeClients
}

// Compile-time checks: Client offers every family.
var (
	_ impl.Backend      = (*Client)(nil)
	_ impl.StockBackend = (*Client)(nil)
)

// Open validates cfg (impl.ConnConfig.Validate), parses cfg.URL with
// redis.ParseURL, applies cfg and paybench's defaults, connects and checks
// the server with PING.
//
// A setting in cfg wins over the URL's query parameter, which wins over
// paybench's default:
//
//   - the connection name (CLIENT SETNAME): cfg.ClientName, the URL's
//     client_name, else impl.DefaultClientName;
//   - retries (impl.ConnConfig.RetrySetting): cfg.Retries, the URL's
//     max_retries (read as a number of retries: 0 and -1 both mean none,
//     where go-redis's own parser reads 0 as its default of 3), else none,
//     because a DECRBY or EVAL re-sent after its reply was lost may apply
//     twice and a correctness harness would rather see the error.
//     "library" is go-redis's default, MaxRetries 3: go-redis then re-sends
//     any command, writes included, after a network error or a read
//     time-out (not a context deadline), after a back-off (retry_backoff
//     in Settings: 10 ms growing to 1 s by default);
//   - cfg.ReadTimeout sets both ReadTimeout and WriteTimeout; otherwise the
//     URL's read_timeout and write_timeout, each else 3 s;
//   - cfg.DialTimeout, the URL's dial_timeout, else 3 s;
//   - cfg.TLS for a rediss:// URL, combined with the URL's (impl.MergeTLS).
//
// And always: one dial attempt per connection (go-redis would otherwise
// try 5 times), so an unreachable server is reported within the dial
// time-out. Context deadlines are always honoured. The cluster-maintenance
// push notifications of recent go-redis are disabled: they need a server
// that knows CLIENT MAINT_NOTIFICATIONS, which Redis 7.0 and embedded
// servers do not.
func Open(ctx context.Context, cfg impl.ConnConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("goredis: %w", err)
	}
	retries, from, err := cfg.RetrySetting()
	if err != nil {
		return nil, fmt.Errorf("goredis: %w", err)
	}
	if cfg.Cluster {
		return openCluster(ctx, cfg, retries, from)
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse URL: %w", err)
	}
	set, err := urlParams(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse URL: %w", err)
	}
	if err := singleOptions(opt).apply(cfg, set); err != nil {
		return nil, err
	}
	switch {
	case retries.Library():
		opt.MaxRetries = 0 // go-redis's default
	case retries.Count() == 0:
		opt.MaxRetries = -1 // no retries
	default:
		opt.MaxRetries = retries.Count()
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("goredis: connect to %s: %w", opt.Addr, err)
	}
	peers, err := openPeers(ctx, opt, cfg.RedlockURLs)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &Client{rdb: rdb, retries: retries, retriesFrom: from, peers: peers, wait: cfg.WaitSetting()}, nil
}

// urlParams reports which query parameters rawURL sets to a value that is
// not blank (go-redis reads a blank value as "its default").
func urlParams(rawURL string) (map[string]bool, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool)
	for k, v := range u.Query() {
		set[k] = len(v) > 0 && v[len(v)-1] != ""
	}
	return set, nil
}

// Name returns impl.GoRedis.
func (c *Client) Name() string { return impl.GoRedis }

// Settings describes the effective client settings (after go-redis applied
// its own defaults). impl.SettingRetries is the number of retries, or
// "library (3)" for go-redis's default; impl.SettingRetriedCommands says
// that go-redis re-sends writes too whenever it retries.
func (c *Client) Settings() map[string]string {
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		return c.clusterSettings(cc)
	}
	o := c.rdb.(*redis.Client).Options()
	retries := strconv.Itoa(o.MaxRetries)
	if c.retries.Library() {
		retries = fmt.Sprintf("library (%d)", o.MaxRetries)
	}
	retried := impl.RetriedNone
	if o.MaxRetries > 0 {
		retried = impl.RetriedAll
	}
	set := singleOptions(o).settings()
	set["pool_size"] = strconv.Itoa(o.PoolSize)
	set[impl.SettingRetries] = retries
	set[impl.SettingRetriesFrom] = c.retriesFrom
	set[impl.SettingRetriedCommands] = retried
	return c.wait.Settings(set)
}

// Close closes every connection of the pool.
func (c *Client) Close() error {
	for _, p := range c.peers {
		_ = p.Close()
	}
	if err := c.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("goredis: close: %w", err)
	}
	return nil
}

// Redis returns the underlying go-redis client, for operation families and
// tests that need more than the contracts offer.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// commonOptions points into the options a single client (redis.Options)
// and a cluster client (redis.ClusterOptions) share, so that one function
// applies paybench's precedence rules (Open's doc) to either.
type commonOptions struct {
	addr                                   string // for the TLS server name
	password, clientName                   *string
	tls                                    **tls.Config
	poolSize, dialerRetries                *int
	dialTimeout, readTimeout, writeTimeout *time.Duration
	contextTimeouts                        *bool
	maintNotifications                     **maintnotifications.Config
	// Read by settings only.
	pipelinePoolSize, protocol *int
	minBackoff, maxBackoff     *time.Duration
}

func singleOptions(o *redis.Options) commonOptions {
	return commonOptions{
		addr: o.Addr, password: &o.Password, clientName: &o.ClientName, tls: &o.TLSConfig,
		poolSize: &o.PoolSize, dialerRetries: &o.DialerRetries,
		dialTimeout: &o.DialTimeout, readTimeout: &o.ReadTimeout, writeTimeout: &o.WriteTimeout,
		contextTimeouts: &o.ContextTimeoutEnabled, maintNotifications: &o.MaintNotificationsConfig,
		pipelinePoolSize: &o.PipelinePoolSize, protocol: &o.Protocol, minBackoff: &o.MinRetryBackoff, maxBackoff: &o.MaxRetryBackoff,
	}
}

func clusterOptions(o *redis.ClusterOptions) commonOptions {
	addr := ""
	if len(o.Addrs) > 0 {
		addr = o.Addrs[0]
	}
	return commonOptions{
		addr: addr, password: &o.Password, clientName: &o.ClientName, tls: &o.TLSConfig,
		poolSize: &o.PoolSize, dialerRetries: &o.DialerRetries,
		dialTimeout: &o.DialTimeout, readTimeout: &o.ReadTimeout, writeTimeout: &o.WriteTimeout,
		contextTimeouts: &o.ContextTimeoutEnabled, maintNotifications: &o.MaintNotificationsConfig,
		pipelinePoolSize: &o.PipelinePoolSize, protocol: &o.Protocol, minBackoff: &o.MinRetryBackoff, maxBackoff: &o.MaxRetryBackoff,
	}
}

// apply sets the shared options from cfg over the URL's (set: the URL's
// query parameters), else paybench's defaults; and always one dial
// attempt per connection, context deadlines honoured, no maintenance
// notifications.
func (o commonOptions) apply(cfg impl.ConnConfig, set map[string]bool) error {
	if cfg.Password != "" {
		*o.password = cfg.Password
	}
	var err error
	if *o.tls, err = impl.MergeTLS(o.addr, *o.tls, cfg.TLS); err != nil {
		return fmt.Errorf("goredis: %w", err)
	}
	if cfg.PoolSize > 0 {
		*o.poolSize = cfg.PoolSize // per node on a cluster
	}
	if cfg.ClientName != "" {
		*o.clientName = cfg.ClientName
	} else if *o.clientName == "" {
		*o.clientName = impl.DefaultClientName(impl.GoRedis)
	}
	switch {
	case cfg.DialTimeout > 0:
		*o.dialTimeout = cfg.DialTimeout
	case !set["dial_timeout"]:
		*o.dialTimeout = DialTimeout
	}
	switch {
	case cfg.ReadTimeout > 0:
		*o.readTimeout = cfg.ReadTimeout
		*o.writeTimeout = cfg.ReadTimeout
	default:
		if !set["read_timeout"] {
			*o.readTimeout = ReadTimeout
		}
		if !set["write_timeout"] {
			*o.writeTimeout = WriteTimeout
		}
	}
	if *o.dialerRetries <= 0 {
		*o.dialerRetries = 1 // one dial attempt per connection
	}
	*o.contextTimeouts = true
	*o.maintNotifications = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return nil
}

// settings are the Settings keys a single and a cluster client share, read
// from the options as built (the caller adds pool size and retries).
func (o commonOptions) settings() map[string]string {
	return map[string]string{
		"library":               "github.com/redis/go-redis/v9 v" + redis.Version(),
		"client_name":           *o.clientName,
		"pipeline_pool_size":    strconv.Itoa(*o.pipelinePoolSize),
		"protocol":              strconv.Itoa(*o.protocol),
		"retry_backoff":         o.minBackoff.String() + ".." + o.maxBackoff.String(),
		impl.SettingDialTimeout: o.dialTimeout.String(),
		impl.SettingReadTimeout: o.readTimeout.String(),
		"write_timeout":         o.writeTimeout.String(),
		"context_timeouts":      strconv.FormatBool(*o.contextTimeouts),
		impl.SettingTLS:         impl.TLSSetting(*o.tls),
	}
}
