// Package impl holds the operation contracts of paybench: the small
// interfaces each operation family implements, their typed errors, the key
// schema and the Lua scripts. The sub-packages goredis and rueidis implement
// every contract on one client library each; cacheaside is the cache
// family's one backend-neutral implementation, over each library's
// CacheStore; impltest is the conformance suite both must pass.
//
// Nothing in impl knows about scenarios, the engine or reports.
package impl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/paybench/paybench/impl/wiretap"
)

// Backend names, as the command line spells them.
const (
	GoRedis = "goredis"
	Rueidis = "rueidis"
)

// backendRegistry holds the registered backends, in registration order.
var backendRegistry struct {
	sync.Mutex
	names   []string
	openers map[string]Opener
}

// RegisterBackend adds a client backend under its name: each backend
// package calls it from an init function, and package impl/backends
// imports every backend package. It panics on a duplicate or empty name.
func RegisterBackend(name string, open Opener) {
	r := &backendRegistry
	r.Lock()
	defer r.Unlock()
	if name == "" || open == nil {
		panic("impl: RegisterBackend with an empty name or a nil opener")
	}
	if _, dup := r.openers[name]; dup {
		panic("impl: duplicate backend " + name)
	}
	if r.openers == nil {
		r.openers = map[string]Opener{}
	}
	r.names = append(r.names, name)
	r.openers[name] = open
}

// Backends lists the registered client backends, in display order (the
// order their packages were initialised: by import path).
func Backends() []string {
	r := &backendRegistry
	r.Lock()
	defer r.Unlock()
	return append([]string(nil), r.names...)
}

// BackendOpener returns the opener of a registered backend.
func BackendOpener(name string) (Opener, bool) {
	r := &backendRegistry
	r.Lock()
	defer r.Unlock()
	open, ok := r.openers[name]
	return open, ok
}

// Sentinel errors shared by every operation family. Implementations wrap
// them (with %w) so callers test with errors.Is.
var (
	// ErrInvalidQuantity is returned, before any Redis call, for a quantity
	// of zero or less or above MaxQuantity.
	ErrInvalidQuantity = errors.New("invalid quantity")
	// ErrInvalidID is returned for an identifier that cannot be used.
	ErrInvalidID = errors.New("invalid id")
	// ErrUnknownStrategy is returned when a strategy name is not known to
	// the operation family.
	ErrUnknownStrategy = errors.New("unknown strategy")
	// ErrContention is returned when an optimistic operation (WATCH) gave up
	// after its bounded number of retries.
	ErrContention = errors.New("contention: retries exhausted")
	// ErrNotSupported is returned when a backend cannot offer a strategy
	// (for example client-side caching on a library without it).
	ErrNotSupported = errors.New("not supported by this library")
)

// Backend is one client library connected to one Redis. Each operation
// family adds a small interface of its own (StockBackend, ...) that the
// backends implement; callers type-assert to the family they need.
type Backend interface {
	// Name returns the backend name (GoRedis or Rueidis).
	Name() string
	// Settings describes the client's settings that matter when two
	// backends are compared (pool size, pipelining, ...), the values in
	// effect. Every backend reports SettingRetries, SettingRetriesFrom,
	// SettingRetriedCommands, SettingReadTimeout, SettingDialTimeout and
	// SettingTLS.
	Settings() map[string]string
	// Classify names the class of an error one of the backend's operations
	// returned (one of Classes; "" for nil): it recognises its library's
	// typed errors, however wrapped, and falls back to Classify.
	Classify(err error) string
	// Close releases every connection.
	Close() error
}

// ConnConfig says how a backend connects. URL is parsed by each client
// library's own URL parser.
//
// Precedence, for every setting that the URL's query may also carry
// (client_name, max_retries, read_timeout, write_timeout, dial_timeout): a
// value set in ConnConfig wins over the URL's; the URL's wins over
// paybench's default. Each backend's Settings shows the values in effect.
// Validate checks the fields that need no server; every Opener calls it.
type ConnConfig struct {
	// URL is a redis://, rediss:// or unix:// address.
	URL string
	// Password, when not empty, overrides the URL's password.
	Password string
	// PoolSize bounds go-redis's connection pool (0: 10 per GOMAXPROCS,
	// go-redis's own default). rueidis multiplexes and ignores it.
	PoolSize int
	// DisableAutoPipelining turns rueidis's auto-pipelining off.
	DisableAutoPipelining bool
	// ClientName names every connection of the backend (CLIENT SETNAME),
	// so that CLIENT LIST tells the backend under test from paybench's
	// admin client and from other applications. Empty: the URL's
	// client_name when it sets one, else DefaultClientName of the backend
	// ("paybench-goredis", "paybench-rueidis").
	ClientName string
	// Retries says whether the client library re-sends a command whose
	// attempt failed with a network error or a time-out, as ParseRetries
	// reads it:
	//
	//   - "" (unset): the URL's max_retries when it has one (see
	//     RetrySetting), else no retries — paybench's default, because a
	//     DECRBY or EVAL re-sent after its reply was lost may apply twice
	//     and a correctness harness would rather see the error;
	//   - "0": no retries, whatever the URL says;
	//   - "library": each library's own default. go-redis: 3 retries of
	//     every command, writes included. rueidis: read-only commands
	//     only, retried with back-off until the context ends (no count);
	//   - "N": go-redis retries every command N times; rueidis retries
	//     read-only commands N times (it never re-sends a write).
	//
	// SettingRetries, SettingRetriesFrom and SettingRetriedCommands in
	// Settings say what the backend does.
	Retries string
	// ReadTimeout bounds waiting for one reply (0: the URL's, else 3 s).
	// go-redis: ReadTimeout and WriteTimeout (URL read_timeout and
	// write_timeout). rueidis: ConnWriteTimeout (URL write_timeout, else
	// read_timeout), the deadline of a command sent alone and of the PING
	// it sends on a connection that stopped answering.
	ReadTimeout time.Duration
	// DialTimeout bounds establishing one connection (0: the URL's
	// dial_timeout, else 3 s). go-redis: DialTimeout; rueidis:
	// Dialer.Timeout.
	DialTimeout time.Duration
	// TLS, when not nil, is the TLS configuration of a rediss:// URL's
	// connections (a CA, a client certificate, a server name, no
	// verification: paybench's --tls-* flags), in place of the one the
	// URL implies (the system's roots, the URL's host as server name);
	// MergeTLS says how the two combine. With a redis:// or unix:// URL
	// it is an error (ErrTLSNeedsRediss). Settings reports SettingTLS.
	TLS *tls.Config
	// Cluster says URL names a Redis Cluster: its host and any addr=
	// query parameters are seed addresses, from which each backend
	// discovers the masters and routes every command to its key's master
	// (go-redis: a ClusterClient; rueidis: its cluster client).
	Cluster bool
	// RedlockURLs are the other independent servers of a Redlock
	// deployment (--redis redlock:N), URL being the first. Only the
	// redsync strategy uses them (one pool per server); every other
	// strategy runs on URL alone. Each is opened with the same settings
	// as URL.
	RedlockURLs []string
	// Redirects, when not nil, counts the MOVED and ASK replies the
	// backend's connections receive from a Redis Cluster (Cluster only),
	// whether the library follows them or surfaces them: it is read on
	// the wire (impl/wiretap). Every instance opened with the same
	// ConnConfig adds to the same Counter.
	Redirects *wiretap.Counter
}

// DefaultClientName is the connection name of a backend whose ConnConfig
// names none: "paybench-" + backend.
func DefaultClientName(backend string) string { return "paybench-" + backend }

// Opener connects a backend.
type Opener func(ctx context.Context, cfg ConnConfig) (Backend, error)

// StrategyError reports a strategy name that a family does not know.
func StrategyError(family, name string, known []string) error {
	return fmt.Errorf("%w %q for %s (known: %v)", ErrUnknownStrategy, name, family, known)
}
