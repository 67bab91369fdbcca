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
	"errors"
	"fmt"
	"sync"
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
	// backends are compared (pool size, pipelining, ...).
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
