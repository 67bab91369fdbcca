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
	"fmt"
	"math"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
)

// Defaults applied by Open when the URL does not set them.
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
}

// Compile-time checks: Client offers every family.
var (
	_ impl.Backend      = (*Client)(nil)
	_ impl.StockBackend = (*Client)(nil)
)

// Open parses cfg.URL with rueidis.ParseURL, applies cfg (password,
// auto-pipelining) and paybench's defaults, connects and checks the server
// with PING.
//
// Defaults, each kept when the URL sets it explicitly: a dial time-out and a
// connection write time-out of 3 s; the connection name (CLIENT SETNAME)
// impl.DefaultClientName, unless cfg.ClientName names one (it wins over the
// URL's client_name). Client-side caching is off (DisableCache): no
// operation uses it yet, and it needs RESP3 client tracking, which embedded
// servers lack. The client is a single-node one (ForceSingleClient), like
// the go-redis backend's: rueidis would otherwise probe for Redis Cluster
// and treat a server that answers CLUSTER SLOTS (miniredis does) as a
// one-node cluster, with a different connection layout, which would skew a
// comparison of the two libraries. rueidis never re-sends a write on its
// own (it retries read-only commands after network errors, unless the URL
// says max_retries=0), so a write whose reply was lost is never applied
// twice by the client; Settings reports it under "retry".
func Open(ctx context.Context, cfg impl.ConnConfig) (*Client, error) {
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
	if !q.Has("dial_timeout") {
		opt.Dialer.Timeout = DialTimeout
	}
	if !q.Has("write_timeout") {
		opt.ConnWriteTimeout = ConnWriteTimeout
	}
	if cfg.ClientName != "" {
		opt.ClientName = cfg.ClientName
	} else if opt.ClientName == "" {
		opt.ClientName = impl.DefaultClientName(impl.Rueidis)
	}
	opt.DisableAutoPipelining = cfg.DisableAutoPipelining
	opt.DisableCache = true
	opt.ForceSingleClient = true

	rc, err := rd.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("rueidis: connect to %v: %w", opt.InitAddress, err)
	}
	if err := rc.Do(ctx, rc.B().Ping().Build()).Error(); err != nil {
		rc.Close()
		return nil, fmt.Errorf("rueidis: connect to %v: %w", opt.InitAddress, err)
	}
	return &Client{rc: rc, opt: opt}, nil
}

// Name returns impl.Rueidis.
func (c *Client) Name() string { return impl.Rueidis }

// Settings describes the client settings that shape its behaviour under
// load: how many pipelined connections it multiplexes over, whether
// auto-pipelining is on, the blocking pool that serves dedicated (WATCH)
// connections, the time-outs, and what the client re-sends on its own
// ("retry": rueidis re-sends read-only commands after network errors, until
// the deadline, and never a write; "off" with max_retries=0 in the URL).
// There is no "max_retries" entry: rueidis has no count of write retries
// to report, and it never retries a write.
func (c *Client) Settings() map[string]string {
	retry := "read-only commands (writes never)"
	if c.opt.DisableRetry {
		retry = "off"
	}
	multiplex := singleMultiplex(c.opt.PipelineMultiplex)
	pool := c.opt.BlockingPoolSize
	if pool <= 0 {
		pool = rd.DefaultPoolSize
	}
	return map[string]string{
		"library":            libraryVersion(),
		"client_name":        c.opt.ClientName,
		"mode":               string(c.rc.Mode()),
		"pipeline_multiplex": strconv.Itoa(multiplex),
		"pipeline_conns":     strconv.Itoa(1 << multiplex),
		"auto_pipelining":    strconv.FormatBool(!c.opt.DisableAutoPipelining),
		"blocking_pool_size": strconv.Itoa(pool),
		"client_cache":       strconv.FormatBool(!c.opt.DisableCache),
		"always_resp2":       strconv.FormatBool(c.opt.AlwaysRESP2),
		"dial_timeout":       c.opt.Dialer.Timeout.String(),
		"conn_write_timeout": c.opt.ConnWriteTimeout.String(),
		"retry":              retry,
	}
}

// singleMultiplex mirrors how rueidis defaults PipelineMultiplex for a
// single-node client: log2(GOMAXPROCS), at most 2.
func singleMultiplex(m int) int {
	if m == 0 {
		m = min(int(math.Log2(float64(runtime.GOMAXPROCS(0)))), 2)
	}
	return max(m, 0)
}

// Close closes every connection.
func (c *Client) Close() error {
	c.rc.Close()
	return nil
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
