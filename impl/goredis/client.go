// Package goredis implements paybench's operation contracts on
// github.com/redis/go-redis/v9, idiomatically: typed command methods,
// redis.NewScript for Lua (EVALSHA with EVAL fallback), Client.Watch with
// Tx.TxPipelined for optimistic transactions.
package goredis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	redis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/paybench/paybench/impl"
)

// Defaults applied by Open when the URL does not set them.
const (
	// DialTimeout bounds establishing one connection.
	DialTimeout = 3 * time.Second
	// ReadTimeout bounds waiting for one reply.
	ReadTimeout = 3 * time.Second
	// WriteTimeout bounds writing one command.
	WriteTimeout = 3 * time.Second
)

// Client is one go-redis client connected to one Redis server. It
// implements impl.Backend and every operation family paybench has; it is
// safe for concurrent use.
type Client struct {
	rdb *redis.Client
}

// Compile-time checks: Client offers every family.
var (
	_ impl.Backend      = (*Client)(nil)
	_ impl.StockBackend = (*Client)(nil)
)

// Open parses cfg.URL with redis.ParseURL, applies cfg (password, pool
// size) and paybench's defaults, connects and checks the server with PING.
//
// Defaults, each kept when the URL sets it explicitly: dial, read and write
// time-outs of 3 s; the connection name (CLIENT SETNAME)
// impl.DefaultClientName, unless cfg.ClientName names one (it wins over the
// URL's client_name); no command retries (max_retries), because a DECRBY or
// EVAL retried after a time-out may apply twice and a correctness harness
// would rather see the error; one dial attempt per connection (go-redis
// would otherwise try 5 times), so an unreachable server is reported within
// the dial time-out. Context deadlines are always honoured. The
// cluster-maintenance push notifications of recent go-redis are disabled:
// they need a server that knows CLIENT MAINT_NOTIFICATIONS, which Redis 7.0
// and embedded servers do not.
func Open(ctx context.Context, cfg impl.ConnConfig) (*Client, error) {
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse URL: %w", err)
	}
	set, err := urlParams(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("goredis: parse URL: %w", err)
	}
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	if cfg.PoolSize > 0 {
		opt.PoolSize = cfg.PoolSize
	}
	if cfg.ClientName != "" {
		opt.ClientName = cfg.ClientName
	} else if opt.ClientName == "" {
		opt.ClientName = impl.DefaultClientName(impl.GoRedis)
	}
	if !set["dial_timeout"] {
		opt.DialTimeout = DialTimeout
	}
	if !set["read_timeout"] {
		opt.ReadTimeout = ReadTimeout
	}
	if !set["write_timeout"] {
		opt.WriteTimeout = WriteTimeout
	}
	if !set["max_retries"] {
		opt.MaxRetries = -1 // no retries
	}
	if opt.DialerRetries <= 0 {
		opt.DialerRetries = 1 // one dial attempt per connection
	}
	opt.ContextTimeoutEnabled = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("goredis: connect to %s: %w", opt.Addr, err)
	}
	return &Client{rdb: rdb}, nil
}

// urlParams reports which query parameters rawURL sets.
func urlParams(rawURL string) (map[string]bool, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool)
	for k := range u.Query() {
		set[k] = true
	}
	return set, nil
}

// Name returns impl.GoRedis.
func (c *Client) Name() string { return impl.GoRedis }

// Settings describes the effective client settings (after go-redis applied
// its own defaults). "max_retries" is how many times go-redis re-sends a
// command after a network error or a time-out: 0 unless the URL sets
// max_retries; above 0, a write whose reply was lost may be applied twice.
func (c *Client) Settings() map[string]string {
	o := c.rdb.Options()
	retries := o.MaxRetries
	return map[string]string{
		"library":            "github.com/redis/go-redis/v9 v" + redis.Version(),
		"client_name":        o.ClientName,
		"pool_size":          strconv.Itoa(o.PoolSize),
		"pipeline_pool_size": strconv.Itoa(o.PipelinePoolSize),
		"protocol":           strconv.Itoa(o.Protocol),
		"max_retries":        strconv.Itoa(retries),
		"dial_timeout":       o.DialTimeout.String(),
		"read_timeout":       o.ReadTimeout.String(),
		"write_timeout":      o.WriteTimeout.String(),
		"context_timeouts":   strconv.FormatBool(o.ContextTimeoutEnabled),
	}
}

// Close closes every connection of the pool.
func (c *Client) Close() error {
	if err := c.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("goredis: close: %w", err)
	}
	return nil
}

// Redis returns the underlying go-redis client, for operation families and
// tests that need more than the contracts offer.
func (c *Client) Redis() *redis.Client { return c.rdb }
