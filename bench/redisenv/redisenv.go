// Package redisenv is where paybench gets its Redis from: a URL the user
// gave (--redis-url or REDIS_URL), else a redis-server found on PATH and
// started on a free loopback port, else a testcontainers container where a
// Docker engine answers, else an embedded in-process miniredis (with a
// warning, since its latencies are not Redis's).
//
// Every kind is checked the same way after connecting (PING, then INFO
// server, bounded by Options.DialTimeout), and connection failures are
// classified into sentinel errors (ErrUnreachable, ErrAuth, ErrNotRedis,
// ErrTLS, ErrTimeout) that callers test with errors.Is. A rediss:// URL
// completes its TLS handshake before the check, so that a server that does
// not answer TLS is named as such. Error messages never contain
// a password: URLs are printed through Redact.
//
// DeletePrefix removes a run's keys (SCAN + UNLINK under the run prefix);
// paybench never flushes a database.
//
// The sub-package redistest gives tests one shared server per test binary.
package redisenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Kind says where a Server comes from.
type Kind string

// Kinds, as the command line spells them.
const (
	// KindAuto tries, in order: a URL (Options.URL or REDIS_URL), a spawned
	// redis-server, a container, an embedded server.
	KindAuto Kind = "auto"
	// KindURL connects to Options.URL, else to $REDIS_URL.
	KindURL Kind = "url"
	// KindSpawn starts a redis-server found on PATH on a free loopback port.
	KindSpawn Kind = "spawn"
	// KindContainer starts a Redis container through testcontainers.
	KindContainer Kind = "container"
	// KindEmbedded starts an in-process miniredis.
	KindEmbedded Kind = "embedded"
)

// Kinds lists every Kind in the order the auto chain tries them, KindAuto
// first.
func Kinds() []Kind {
	return []Kind{KindAuto, KindURL, KindSpawn, KindContainer, KindEmbedded, KindCluster, KindRedlock}
}

// ParseKind parses a kind name; "" is KindAuto. An unknown name yields an
// error wrapping ErrBadKind (a usage error).
func ParseKind(s string) (Kind, error) {
	if _, ok, err := ParseRedlock(s); ok {
		return KindRedlock, err
	}
	if s == "" {
		return KindAuto, nil
	}
	for _, k := range Kinds() {
		if s == string(k) {
			return k, nil
		}
	}
	names := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("%w %q (known: %s)", ErrBadKind, s, strings.Join(names, ", "))
}

// Environment variables Provide reads through Options.Getenv.
const (
	// EnvURL holds the Redis URL used when Options.URL is empty.
	EnvURL = "REDIS_URL"
	// EnvPassword holds a password that overrides the URL's when
	// Options.Password is empty.
	EnvPassword = "REDIS_PASSWORD"
)

// AdminClientName is the connection name (CLIENT SETNAME) of every
// Server's admin client, so that CLIENT LIST tells paybench's own
// bookkeeping from the backend under test (impl.DefaultClientName).
const AdminClientName = "paybench-admin"

// DefaultDialTimeout bounds the connection check when Options.DialTimeout
// is zero.
const DefaultDialTimeout = 3 * time.Second

// EmbeddedWarning is the line Provide writes to Options.Warn when it starts
// an embedded server.
const EmbeddedWarning = "warning: using an embedded in-process Redis (miniredis); its latencies are not Redis's"

// Options says where Provide looks for a Redis. The zero value runs the
// auto chain with the defaults below.
type Options struct {
	// URL is a redis://, rediss:// or unix:// address (--redis-url). When
	// empty, $REDIS_URL is used.
	URL string
	// Password, when not empty, overrides the URL's password. When empty,
	// $REDIS_PASSWORD does the same. Only the url kind uses it.
	Password string
	// Force picks one kind instead of the auto chain ("" is KindAuto).
	// Forcing a kind that is not available is an error saying why.
	Force Kind
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Warn receives one-line warnings, such as EmbeddedWarning (default
	// os.Stderr).
	Warn io.Writer
	// ServerArgs are extra redis-server arguments for a spawned server,
	// such as "--maxmemory", "2mb" or "--rename-command", "EVALSHA", "":
	// tests use them to build the misbehaving servers users meet.
	ServerArgs []string
	// DialTimeout bounds the dial, the handshake and the connection check
	// (PING and INFO server), each kind alike (default DefaultDialTimeout).
	DialTimeout time.Duration
	// TLS, when not nil, is the TLS configuration for a rediss:// URL (see
	// TLSFiles), combined with the URL's as impl.MergeTLS says. Any other
	// server — a redis:// or unix:// URL, a spawned, container or embedded
	// server — with TLS set is an error wrapping ErrBadTLS.
	TLS *tls.Config
	// Cluster says the url kind's URL names a Redis Cluster: its host and
	// any addr= query parameters are seed addresses (--cluster). Without
	// it, a URL whose server is a cluster node is refused (ErrBadURL).
	Cluster bool
	// RedlockServers is N of the redlock kind (0: DefaultRedlockServers).
	RedlockServers int
}

func (o Options) withDefaults() Options {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Warn == nil {
		o.Warn = os.Stderr
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Force == "" {
		o.Force = KindAuto
	}
	return o
}

// Server is one Redis that paybench can use, checked to answer PING. Close
// releases it (and stops it when paybench started it).
type Server struct {
	// Kind says where the server comes from.
	Kind Kind
	// URL is the server's address with the effective password in it; hand
	// it to a client library, never print it (print Redacted()).
	URL string
	// Password is the effective password ("" when none), also in URL.
	Password string
	// Version is INFO server's redis_version ("miniredis vX" for the
	// embedded kind; "" when the server would not say).
	Version string
	// Mode is INFO server's redis_mode: standalone, cluster or sentinel
	// ("" when the server would not say).
	Mode string
	// TLS is the TLS configuration in effect for a rediss:// URL (nil
	// without TLS): the admin client's, which the clients under test use
	// too (impl.ConnConfig.TLS), its server name filled in from the URL.
	TLS *tls.Config

	admin   redis.UniversalClient
	pid     int
	release func() error // stops what Provide started; nil for the url kind
	// proc is a spawned server's process, replaced by Restart.
	proc   *process
	procMu sync.Mutex

	closeOnce sync.Once
	closeErr  error

	// Cluster says the server is a Redis Cluster: Admin is a
	// *redis.ClusterClient, URL holds the seed addresses (host and addr=
	// query parameters), and the backends under test connect in cluster
	// mode.
	Cluster bool
	// nodes are a spawned cluster's processes.
	nodes []*process
	// redlock are the other servers of the redlock kind (RedlockPeers).
	redlock []*Server
}

// Redacted returns URL with its password replaced by "xxxxx" (the user
// name is kept); safe to print.
func (s *Server) Redacted() string { return Redact(s.URL) }

// String returns the kind, the redacted URL and the version; safe to print.
func (s *Server) String() string {
	v := s.Version
	if v == "" {
		v = "unknown version"
	}
	return fmt.Sprintf("%s %s (%s)", s.Kind, s.Redacted(), v)
}

// PID returns the process id of a spawned redis-server, 0 for every other
// kind. Tests stop it (SIGSTOP) to simulate a stalled server.
func (s *Server) PID() int {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	return s.pid
}

// Admin returns a go-redis client on the server for neutral verification
// reads and cleanup. It is created once by Provide and closed by Close. It
// never retries a write (MaxRetries -1); its reads are re-sent up to five
// times when they fail on the network, so that paybench's own bookkeeping
// survives a blip that the operations under test are judged on.
//
// On a cluster it is a *redis.ClusterClient: commands with keys are routed
// to the key's master; commands without one (SCAN, INFO, CLIENT ...) must
// go through ForEachMaster. It follows MOVED and ASK (go-redis's default
// MaxRedirects of 3), a budget go-redis also spends re-sending a command
// after a network error: on a cluster, one of paybench's own writes may
// be re-sent.
func (s *Server) Admin() redis.UniversalClient { return s.admin }

// Close closes the Admin client and stops what Provide started (the
// spawned process, the container, the embedded server). It is safe to call
// more than once and from several goroutines; later calls return the first
// call's error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.admin != nil {
			if err := s.admin.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
				errs = append(errs, fmt.Errorf("close admin client: %w", err))
			}
		}
		if s.release != nil {
			if err := s.release(); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Provide returns a checked Redis server, from the kind opts.Force names or,
// by default, from the first of these that is available: a URL
// (opts.URL, else $REDIS_URL; when one is given, it is used or its error
// returned, never silently replaced), a redis-server on PATH, a container
// (where a Docker engine answers), an embedded miniredis. A kind that is
// available but fails to start is reported on opts.Warn before the next is
// tried. The caller must Close the server; ctx bounds the start only.
func Provide(ctx context.Context, opts Options) (*Server, error) {
	o := opts.withDefaults()
	if _, err := ParseKind(string(o.Force)); err != nil {
		return nil, err
	}
	if o.TLS != nil && (o.Force != KindURL && o.Force != KindAuto || o.url() == "") {
		what := "no Redis URL is given"
		if o.Force != KindAuto && o.Force != KindURL {
			what = "the server is of kind " + string(o.Force)
		}
		return nil, fmt.Errorf("%w: TLS settings apply to a rediss:// URL, and %s", ErrBadTLS, what)
	}
	switch o.Force {
	case KindURL:
		raw := o.url()
		if raw == "" {
			return nil, fmt.Errorf("%w: no Redis URL given (--redis-url or $%s)", ErrUnavailable, EnvURL)
		}
		return provideURL(ctx, raw, o)
	case KindSpawn:
		return spawn(ctx, o, "")
	case KindCluster:
		return spawnCluster(ctx, o)
	case KindContainer:
		return provideContainer(ctx, o)
	case KindEmbedded:
		return provideEmbedded(ctx, o)
	case KindRedlock:
		return provideRedlock(ctx, o)
	}

	if raw := o.url(); raw != "" {
		return provideURL(ctx, raw, o)
	}
	for _, try := range []struct {
		kind Kind
		fn   func(context.Context, Options) (*Server, error)
	}{
		{KindSpawn, func(ctx context.Context, o Options) (*Server, error) { return spawn(ctx, o, "") }},
		{KindContainer, provideContainer},
	} {
		s, err := try.fn(ctx, o)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if !errors.Is(err, ErrUnavailable) {
			fmt.Fprintf(o.Warn, "warning: %s Redis failed, trying the next kind: %s\n", try.kind, oneLine(err.Error()))
		}
	}
	return provideEmbedded(ctx, o)
}

// url returns the URL to use: the option, else the environment's.
func (o Options) url() string {
	if o.URL != "" {
		return o.URL
	}
	return strings.TrimSpace(o.Getenv(EnvURL))
}

// password returns the explicit password: the option, else the
// environment's.
func (o Options) password() string {
	if o.Password != "" {
		return o.Password
	}
	return o.Getenv(EnvPassword)
}

// provideURL connects to a URL the user gave.
func provideURL(ctx context.Context, raw string, o Options) (*Server, error) {
	if o.Cluster {
		return provideClusterURL(ctx, raw, o)
	}
	if u, perr := url.Parse(raw); perr == nil && u.Query().Has("addr") {
		return nil, fmt.Errorf("%w %s: addr= parameters name a Redis Cluster's seed addresses: pass --cluster", ErrBadURL, Redact(raw))
	}
	ro, full, err := parseURL(raw, o.password())
	if err != nil {
		return nil, err
	}
	if ro.TLSConfig, err = impl.MergeTLS(ro.Addr, ro.TLSConfig, o.TLS); err != nil {
		return nil, fmt.Errorf("%w: %s: %w (not %s://)", ErrBadTLS, Redact(raw), err, strings.SplitN(raw, ":", 2)[0])
	}
	s, err := connect(ctx, KindURL, full, ro, o, nil)
	if err == nil && s.Mode == "cluster" {
		_ = s.Close()
		return nil, fmt.Errorf("%w %s: the server is a Redis Cluster node (redis_mode:cluster): pass --cluster to drive it as a cluster", ErrBadURL, s.Redacted())
	}
	return s, err
}

// connect builds the admin client for ro and checks the server. On failure
// it closes the client and calls release.
func connect(ctx context.Context, kind Kind, fullURL string, ro *redis.Options, o Options, release func() error) (*Server, error) {
	// A plain dial first (with the TLS handshake for rediss://): an
	// unreachable server, or one that does not answer TLS, fails here with
	// its own message, before go-redis would log its own dial failure or
	// just time out.
	if err := dialOnce(ctx, ro, o.DialTimeout); err != nil {
		if release != nil {
			err = errors.Join(err, release())
		}
		return nil, connectError(Redact(fullURL), "dial", err, ro.Password)
	}
	s := &Server{
		Kind:     kind,
		URL:      fullURL,
		Password: ro.Password,
		TLS:      ro.TLSConfig,
		admin:    redis.NewClient(adminOptions(ro, o.DialTimeout)),
		release:  release,
	}
	if err := s.check(ctx, o.DialTimeout); err != nil {
		// A redis:// URL to a server that only speaks TLS looks like a peer
		// that hangs up: ask it for a TLS handshake to tell.
		if ro.TLSConfig == nil && errors.Is(err, ErrNotRedis) && ctx.Err() == nil && speaksTLS(ctx, ro, o.DialTimeout) {
			err = &connError{
				msg:   fmt.Sprintf("connection to %s without TLS failed: the server speaks TLS (use a rediss:// URL, not redis://)", ro.Addr),
				class: ErrTLS, cause: err,
			}
		}
		_ = s.Close()
		return nil, err
	}
	// Checked: from now on the admin client's reads survive a blip.
	s.admin.AddHook(retryReads{})
	return s, nil
}

// dialOnce opens and closes one connection to ro's address. For a
// rediss:// URL it also completes the TLS handshake, so that a server that
// does not answer TLS is named as such (an error wrapping *tlsError).
func dialOnce(ctx context.Context, ro *redis.Options, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, ro.Network, ro.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if ro.TLSConfig == nil {
		return nil
	}
	return tlsHandshake(ctx, c, ro, timeout)
}

// tlsHandshake runs the TLS handshake of ro on c within timeout. A failure
// is a *tlsError that names the address and, when the server did not
// answer in TLS (no answer, a non-TLS answer, a hang-up), asks whether it
// is a plain redis:// server.
func tlsHandshake(ctx context.Context, c net.Conn, ro *redis.Options, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	cfg := ro.TLSConfig.Clone()
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		// As tls.Dial does, and go-redis through it.
		host, _, _ := net.SplitHostPort(ro.Addr)
		cfg.ServerName = host
	}
	// Note whether the server asks for a client certificate: with TLS 1.3
	// the client's handshake ends before the server checks it, and a
	// server that requires one hangs up only after.
	asked := false
	if cfg.GetClientCertificate == nil {
		certs := cfg.Certificates
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked = true
			for i := range certs {
				if cri.SupportsCertificate(&certs[i]) == nil {
					return &certs[i], nil
				}
			}
			if len(certs) > 0 {
				return &certs[0], nil
			}
			return &tls.Certificate{}, nil
		}
	}
	tc := tls.Client(c, cfg)
	err := tc.HandshakeContext(ctx)
	if err == nil && asked {
		return clientCertAccepted(tc, ro.Addr, len(cfg.Certificates) > 0)
	}
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	const plain = " (is it a plain redis:// server?)"
	var rh tls.RecordHeaderError
	var ne net.Error
	why := scrub(err.Error())
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		why = "the server did not answer TLS within " + timeout.String() + plain
	case errors.As(err, &rh):
		why = "the server did not answer TLS" + plain
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		why = "the server hung up without answering TLS" + plain
	}
	return &tlsError{msg: "TLS handshake with " + ro.Addr + " failed: " + why, cause: err}
}

// clientCertAccepted checks, on a connection whose server asked for a
// client certificate, that the server kept the session: it sends a PING
// and waits for any reply (an error reply, NOAUTH say, counts). A server
// that closes the session instead, or sends a TLS alert, refused the
// certificate given (or the lack of one): a *tlsError that says so. A
// reply that does not come within the connection's deadline is left to
// the check that follows.
func clientCertAccepted(tc *tls.Conn, addr string, gave bool) error {
	_, err := tc.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	if err == nil {
		var b [1]byte
		_, err = tc.Read(b[:])
	}
	if err == nil {
		return nil
	}
	var ne net.Error
	var remote *net.OpError
	alert := errors.As(err, &remote) && remote.Op == "remote error"
	if !alert && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) || errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	why := "the server requires a client certificate and none was given (--tls-cert and --tls-key)"
	if gave {
		why = "the server refused the client certificate (is it signed by a CA the server trusts?)"
	}
	return &tlsError{msg: "TLS session with " + addr + " failed: " + why + ": " + scrub(err.Error()), cause: err}
}

// speaksTLS reports whether the TCP server of ro answers a TLS handshake
// (completes it, or answers with a TLS alert), within timeout. It only
// probes: it does not verify the certificate and sends nothing else.
func speaksTLS(ctx context.Context, ro *redis.Options, timeout time.Duration) bool {
	if ro.Network != "tcp" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: &tls.Config{InsecureSkipVerify: true}}
	c, err := d.DialContext(ctx, "tcp", ro.Addr)
	if err == nil {
		_ = c.Close()
		return true
	}
	var remote *net.OpError
	return errors.As(err, &remote) && remote.Op == "remote error"
}

// adminOptions returns the settings of the admin client: bounded dial and
// read, no command retries, one dial attempt, RESP2 and no CLIENT SETINFO so
// that old servers, proxies and miniredis all accept the handshake, and the
// name AdminClientName (CLIENT SETNAME, which Redis has had since 2.6.9).
func adminOptions(ro *redis.Options, dialTimeout time.Duration) *redis.Options {
	c := *ro
	c.DialTimeout = dialTimeout
	c.ReadTimeout = max(dialTimeout, 5*time.Second)
	c.WriteTimeout = c.ReadTimeout
	c.ContextTimeoutEnabled = true
	c.MaxRetries = -1
	c.DialerRetries = 1
	c.Protocol = 2
	c.DisableIdentity = true
	c.PoolSize = 8
	c.ClientName = AdminClientName
	return &c
}

// check runs PING and INFO server within dialTimeout and fills Version and
// Mode. A server that refuses INFO with an error reply (other than an auth
// error) passes with Version and Mode unknown. Cancelling ctx interrupts
// the check at once (go-redis itself only heeds deadlines): it closes the
// admin client.
func (s *Server) check(ctx context.Context, dialTimeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.admin.Close() })
	fail := func(step string, err error) error {
		stop()
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return connectError(s.Redacted(), step, err, s.Password)
	}
	if err := s.admin.Ping(ctx).Err(); err != nil {
		return fail("PING", err)
	}
	info, err := s.admin.Info(ctx, "server").Result()
	var re redis.Error
	switch {
	case err == nil:
		s.Version = infoField(info, "redis_version")
		s.Mode = infoField(info, "redis_mode")
	case !errors.As(err, &re) || classify(err) != nil:
		return fail("INFO server", err)
	}
	if !stop() {
		// The time-out or cancellation closed the admin client just now.
		return fail("check", ctx.Err())
	}
	return nil
}

// infoField returns the value of one "name:value" line of an INFO reply.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// Identity returns the server's INFO server run_id and uptime_in_seconds:
// a run_id that changes, or an uptime that goes down, means the server
// restarted.
//
// On a cluster it reads every master: runID joins the masters' run_ids
// (sorted), uptime is the least of theirs, so that a restart of any master,
// or a failover that changes which nodes are masters, shows.
func Identity(ctx context.Context, rdb redis.UniversalClient) (runID string, uptime int64, err error) {
	node, ok := rdb.(*redis.Client)
	if !ok {
		return clusterIdentity(ctx, rdb)
	}
	return nodeIdentity(ctx, node)
}

// clusterIdentity is Identity over every master.
func clusterIdentity(ctx context.Context, rdb redis.UniversalClient) (string, int64, error) {
	var mu sync.Mutex
	var ids []string
	uptime := int64(-1)
	err := ForEachMaster(ctx, rdb, func(ctx context.Context, node *redis.Client) error {
		id, up, err := nodeIdentity(ctx, node)
		if err != nil {
			return fmt.Errorf("%s: %w", node.Options().Addr, err)
		}
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, id)
		if uptime < 0 || up < uptime {
			uptime = up
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	sort.Strings(ids)
	return strings.Join(ids, ","), uptime, nil
}

// nodeIdentity is Identity of one server.
func nodeIdentity(ctx context.Context, rdb *redis.Client) (runID string, uptime int64, err error) {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", 0, fmt.Errorf("INFO server: %w", err)
	}
	runID = infoField(info, "run_id")
	if runID == "" {
		return "", 0, errors.New("INFO server has no run_id")
	}
	uptime, err = strconv.ParseInt(infoField(info, "uptime_in_seconds"), 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("INFO server uptime_in_seconds: %w", err)
	}
	return runID, uptime, nil
}
