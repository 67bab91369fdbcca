// Package backends opens a client backend by name, so that callers (the
// engine, scenarios, the command line) need not import every library.
// Importing it registers every backend paybench has: one import line per
// backend package, whose init function calls impl.RegisterBackend.
package backends

import (
	"context"
	"errors"
	"fmt"

	"github.com/paybench/paybench/impl"

	// The backends, each registering itself.
	_ "github.com/paybench/paybench/impl/goredis"
	_ "github.com/paybench/paybench/impl/rueidis"
)

// ErrUnknownBackend is returned (wrapped) by Open for a name that is not one
// of Names.
var ErrUnknownBackend = errors.New("unknown backend")

// Names lists the backends Open knows, in display order.
func Names() []string { return impl.Backends() }

// Opener returns the impl.Opener of the named backend.
func Opener(name string) (impl.Opener, error) {
	if open, ok := impl.BackendOpener(name); ok {
		return open, nil
	}
	return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownBackend, name, Names())
}

// Open connects the named backend with cfg.
func Open(ctx context.Context, name string, cfg impl.ConnConfig) (impl.Backend, error) {
	open, err := Opener(name)
	if err != nil {
		return nil, err
	}
	return open(ctx, cfg)
}
