// Package rueidis implements paybench's operation contracts on
// github.com/redis/rueidis, idiomatically: command builders, DoMulti for
// pipelines and MULTI/EXEC, rueidis.NewLuaScript for Lua (EVALSHA with EVAL
// fallback) and a dedicated connection for WATCH.
//
// rueidis multiplexes every caller's commands over a few pipelined
// connections (auto-pipelining) instead of keeping a pool; WATCH, which is
// per-connection state, therefore runs on a dedicated connection taken from
// its blocking pool.
package rueidis

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/wiretap"
)

// Defaults applied by Open when neither the ConnConfig nor the URL sets
// them.
const (
	// DialTimeout bounds establishing one connection.
	DialTimeout = 3 * time.Second
	// ConnWriteTimeout bounds writing to a connection and waiting for the
	// replies to pipelined commands.
	ConnWriteTimeout = 3 * time.Second
)

// Client is one rueidis client connected to one Redis deployment. It
// implements impl.Backend and every operation family paybench has; it is
// safe for concurrent use.
type Client struct {
	rc  rd.Client
	opt rd.ClientOption
	// retries is the retry setting in effect, from retriesFrom (an
	// impl.RetriesFrom* value).
	retries     impl.Retries
	retriesFrom string
	// closers end what strategies opened on clients of their own
	// (rueidislock's Locker), when the Client closes.
	closeMu sync.Mutex
	closers []func()
	// wait is the WAIT sent after the stock strategies' writes.
	wait impl.WaitSetting
}

// Compile-time checks: Client offers every family.
var (
	_ impl.Backend      = (*Client)(nil)
	_ impl.StockBackend = (*Client)(nil)
)

// Open validates cfg (impl.ConnConfig.Validate), parses cfg.URL with
// rueidis.ParseURL, applies cfg and paybench's defaults, connects and
// checks the server with PING.
//
// A setting in cfg wins over the URL's query parameter, which wins over
// paybench's default:
//
//   - the connection name (CLIENT SETNAME): cfg.ClientName, the URL's
//     client_name, else impl.DefaultClientName;
//   - retries (impl.ConnConfig.RetrySetting): cfg.Retries, the URL's
//     max_retries (a number of retries; rueidis's own parser reads only
//     0, and ignores any other value), else none (DisableRetry). rueidis
//     retries only commands it knows to be read-only (GET, EVAL_RO, ...,
//     and those marked ToRetryable), after a network error, never a write;
//     "library" is its default: such a command is retried with an
//     exponential back-off of at most 1 s, as long as the context's
//     deadline is further than the next back-off (without a deadline, until
//     it succeeds or the client closes) — no count. N retries are a
//     ClientOption.RetryDelay that gives up after N (the same back-off);
//   - cfg.ReadTimeout sets ConnWriteTimeout, else the URL's write_timeout
//     (rueidis's parser), else the URL's read_timeout (read by paybench, as
//     go-redis does: a Go duration or a number of seconds; it must be
//     positive), else 3 s. ConnWriteTimeout is the deadline of a command
//     sent alone on its connection; for pipelined commands rueidis sends a
//     PING on a connection that gave no reply for Dialer.KeepAlive (1 s)
//     and closes it when the PING gets no reply within ConnWriteTimeout;
//   - cfg.DialTimeout sets Dialer.Timeout (which also bounds the
//     connection's handshake), else the URL's dial_timeout, else 3 s;
//   - cfg.TLS for a rediss:// URL, combined with the URL's (impl.MergeTLS).
//
// And always: client-side caching is off (DisableCache): no operation uses
// it yet, and it needs RESP3 client tracking, which embedded servers lack.
// The client is a single-node one (ForceSingleClient), like the go-redis
// backend's: rueidis would otherwise probe for Redis Cluster and treat a
// server that answers CLUSTER SLOTS (miniredis does) as a one-node
// cluster, with a different connection layout, which would skew a
// comparison of the two libraries. With cfg.Cluster the URL's host and
// addr= query parameters are a Redis Cluster's seed addresses, and the
// client is rueidis's cluster client (Settings: mode "cluster"); Open
// refuses a cfg.Cluster whose server turned out not to be a cluster.
func Open(ctx context.Context, cfg impl.ConnConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rueidis: %w", err)
	}
	retries, from, err := cfg.RetrySetting()
	if err != nil {
		return nil, fmt.Errorf("rueidis: %w", err)
	}
	opt, err := rd.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rueidis: parse URL: %w", err)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rueidis: parse URL: %w", err)
	}
	q := u.Query()
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	addr := ""
	if len(opt.InitAddress) > 0 {
		addr = opt.InitAddress[0]
	}
	if opt.TLSConfig, err = impl.MergeTLS(addr, opt.TLSConfig, cfg.TLS); err != nil {
		return nil, fmt.Errorf("rueidis: %w", err)
	}
	switch {
	case cfg.DialTimeout > 0:
		opt.Dialer.Timeout = cfg.DialTimeout
	case !q.Has("dial_timeout"):
		opt.Dialer.Timeout = DialTimeout
	}
	switch {
	case cfg.ReadTimeout > 0:
		opt.ConnWriteTimeout = cfg.ReadTimeout
	case q.Has("write_timeout"):
		// rueidis's parser has set it.
	case q.Get("read_timeout") != "":
		d, err := urlDuration(q.Get("read_timeout"))
		if err != nil {
			return nil, fmt.Errorf("rueidis: parse URL: read_timeout: %w", err)
		}
		opt.ConnWriteTimeout = d
	default:
		opt.ConnWriteTimeout = ConnWriteTimeout
	}
	if cfg.ClientName != "" {
		opt.ClientName = cfg.ClientName
	} else if opt.ClientName == "" {
		opt.ClientName = impl.DefaultClientName(impl.Rueidis)
	}
	switch {
	case retries.Library():
		opt.DisableRetry = false
		opt.RetryDelay = nil // rueidis's default back-off, no count
	case retries.Count() == 0:
		opt.DisableRetry = true
	default:
		opt.DisableRetry = false
		opt.RetryDelay = retryAtMost(retries.Count())
	}
	opt.DisableAutoPipelining = cfg.DisableAutoPipelining
	opt.DisableCache = true
	// On a cluster (cfg.Cluster), rueidis discovers the masters from the
	// seed addresses (InitAddress) and routes each command to its key's
	// master, following MOVED and ASK.
	opt.ForceSingleClient = !cfg.Cluster
	if cfg.Cluster && cfg.Redirects != nil {
		// rueidis follows MOVED and ASK inside its cluster client, below
		// any hook on a command: the redirections are counted on the wire.
		opt.DialCtxFn = tapDial(opt.DialCtxFn, cfg.Redirects)
	}

	rc, err := rd.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("rueidis: connect to %v: %w", opt.InitAddress, err)
	}
	if err := rc.Do(ctx, rc.B().Ping().Build()).Error(); err != nil {
		rc.Close()
		return nil, fmt.Errorf("rueidis: connect to %v: %w", opt.InitAddress, err)
	}
	if cfg.Cluster && rc.Mode() != rd.ClientModeCluster {
		rc.Close()
		return nil, fmt.Errorf("rueidis: %v is not a Redis Cluster (client mode %s)", opt.InitAddress, rc.Mode())
	}
	return &Client{rc: rc, opt: opt, retries: retries, retriesFrom: from, wait: cfg.WaitSetting()}, nil
}

// tapDial returns a DialCtxFn that dials as dial does (rueidis's own way
// when nil: TCP, then TLS with the option's configuration) and counts
// the MOVED and ASK replies each connection reads (wiretap).
func tapDial(dial func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error), ctr *wiretap.Counter) func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
	return func(ctx context.Context, addr string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
		var c net.Conn
		var err error
		switch {
		case dial != nil:
			c, err = dial(ctx, addr, d, cfg)
		case cfg != nil:
			td := tls.Dialer{NetDialer: d, Config: cfg}
			c, err = td.DialContext(ctx, "tcp", addr)
		default:
			c, err = d.DialContext(ctx, "tcp", addr)
		}
		if err != nil {
			return nil, err
		}
		return wiretap.Wrap(c, wiretap.Options{Counter: ctr}), nil
	}
}

// urlDuration reads a time-out the way go-redis's ParseURL does: a Go
// duration, or a plain integer of seconds. rueidis cannot wait without a
// time-out, so a value of 0 or less is not supported.
func urlDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, aerr := strconv.Atoi(s)
		if aerr != nil {
			return 0, fmt.Errorf("%q is not a duration: %w", s, err)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: rueidis has no read time-out of %q (none): its ConnWriteTimeout must be positive", impl.ErrNotSupported, s)
	}
	return d, nil
}

// retryAtMost is a rueidis.RetryDelayFn that allows n retries of a
// command rueidis deems retryable and refuses the next (a negative delay),
// with rueidis's default back-off: 2^attempts µs plus as much jitter, at
// most 1 s. rueidis counts attempts from 1 for the first retry.
func retryAtMost(n int) rd.RetryDelayFn {
	return func(attempts int, _ rd.Completed, _ error) time.Duration {
		if attempts > n {
			return -1
		}
		base := int64(1) << min(attempts, 20)
		return min(time.Second, time.Duration(base+rand.Int64N(base))*time.Microsecond)
	}
}

// Name returns impl.Rueidis.
func (c *Client) Name() string { return impl.Rueidis }

// Settings describes the client settings that shape its behaviour under
// load: how many pipelined connections it multiplexes over, whether
// auto-pipelining is on, the blocking pool that serves dedicated (WATCH)
// connections, retries and the time-outs. impl.SettingRetries is the
// number of retries, or "library (unbounded)" for rueidis's default, and
// impl.SettingRetriedCommands says that rueidis retries read-only commands
// only; impl.SettingReadTimeout is ConnWriteTimeout (also shown under its
// own name), and keepalive_ping the idle gap after which a connection that
// waits for replies is PINGed.
func (c *Client) Settings() map[string]string {
	multiplex := singleMultiplex(c.opt.PipelineMultiplex)
	pool := c.opt.BlockingPoolSize
	if pool <= 0 {
		pool = rd.DefaultPoolSize
	}
	retries, retried := c.retries.String(), impl.RetriedReadOnly
	switch {
	case c.opt.DisableRetry:
		retries, retried = "0", impl.RetriedNone
	case c.retries.Library():
		retries = "library (unbounded)"
	}
	keepalive := c.opt.Dialer.KeepAlive
	if keepalive == 0 {
		keepalive = rd.DefaultTCPKeepAlive
	}
	set := map[string]string{
		"library":                   libraryVersion(),
		"client_name":               c.opt.ClientName,
		"mode":                      string(c.rc.Mode()),
		"pipeline_multiplex":        strconv.Itoa(multiplex),
		"pipeline_conns":            strconv.Itoa(1 << multiplex),
		"auto_pipelining":           strconv.FormatBool(!c.opt.DisableAutoPipelining),
		"blocking_pool_size":        strconv.Itoa(pool),
		"client_cache":              strconv.FormatBool(!c.opt.DisableCache),
		"always_resp2":              strconv.FormatBool(c.opt.AlwaysRESP2),
		impl.SettingRetries:         retries,
		impl.SettingRetriesFrom:     c.retriesFrom,
		impl.SettingRetriedCommands: retried,
		impl.SettingDialTimeout:     c.opt.Dialer.Timeout.String(),
		impl.SettingReadTimeout:     c.opt.ConnWriteTimeout.String(),
		"conn_write_timeout":        c.opt.ConnWriteTimeout.String(),
		"keepalive_ping":            keepalive.String(),
		impl.SettingTLS:             impl.TLSSetting(c.opt.TLSConfig),
	}
	c.wait.Settings(set)
	if c.rc.Mode() == rd.ClientModeCluster {
		set[impl.SettingCluster] = "cluster client"
		set["cluster_routing"] = "every command on its key's master"
		if c.opt.SendToReplicas != nil {
			set["cluster_routing"] = "read-only commands may go to replicas"
		}
		// The routing options as built (ClientOption), one each.
		set["cluster_replica_only"] = strconv.FormatBool(c.opt.ReplicaOnly)
		set["cluster_send_to_replicas"] = strconv.FormatBool(c.opt.SendToReplicas != nil)
		set["cluster_replica_selector"] = strconv.FormatBool(c.opt.ReplicaSelector != nil || c.opt.ReadNodeSelector != nil)
		set["cluster_shards_refresh"] = c.opt.ClusterOption.ShardsRefreshInterval.String()
		if c.opt.ClusterOption.ShardsRefreshInterval == 0 {
			set["cluster_shards_refresh"] = "0s (no periodic refresh: on redirections and connection errors only)"
		}
		// MOVED and ASK are followed whatever the retry setting; a write
		// is never re-sent after a lost connection, nor after TRYAGAIN.
		set["cluster_max_redirects"] = "unlimited (until the context ends)"
		if n := c.opt.ClusterOption.MaxMovedRedirections; n > 0 {
			set["cluster_max_redirects"] = strconv.Itoa(n)
		}
		set["cluster_resends"] = "none for writes (read-only commands per retries)"
	}
	return set
}

// singleMultiplex mirrors how rueidis defaults PipelineMultiplex for a
// single-node client: log2(GOMAXPROCS), at most 2.
func singleMultiplex(m int) int {
	if m == 0 {
		m = min(int(math.Log2(float64(runtime.GOMAXPROCS(0)))), 2)
	}
	return max(m, 0)
}

// Close closes every connection. rueidis's cluster client closes its
// node connections asynchronously (v1.0.79: one goroutine per node), so a
// command sent right after Close could still be applied; on a cluster,
// Close therefore waits (at most closeWait) until the client refuses a
// PING.
func (c *Client) Close() error {
	c.closeMu.Lock()
	closers := c.closers
	c.closers = nil
	c.closeMu.Unlock()
	for _, f := range closers {
		f()
	}
	c.rc.Close()
	if c.rc.Mode() != rd.ClientModeCluster {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	for c.rc.Do(ctx, c.rc.B().Ping().Build()).Error() == nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("rueidis: close: the cluster client still answered after %s", closeWait)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// closeWait bounds Close's wait for a cluster client's connections to
// close.
const closeWait = 2 * time.Second

// onClose registers f to run when the Client closes.
func (c *Client) onClose(f func()) {
	c.closeMu.Lock()
	c.closers = append(c.closers, f)
	c.closeMu.Unlock()
}

// Rueidis returns the underlying rueidis client, for operation families
// and tests that need more than the contracts offer.
func (c *Client) Rueidis() rd.Client { return c.rc }

// libraryVersion returns the rueidis module path and the version built in.
func libraryVersion() string {
	const path = "github.com/redis/rueidis"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				return path + " " + m.Version
			}
		}
	}
	return path
}
