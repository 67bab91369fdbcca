// Package backends opens a client backend by name, so that callers (the
// engine, scenarios, the command line) need not import every library.
package backends

import (
	"context"
	"errors"
	"fmt"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/goredis"
	"github.com/paybench/paybench/impl/rueidis"
)

// ErrUnknownBackend is returned (wrapped) by Open for a name that is not one
// of Names.
var ErrUnknownBackend = errors.New("unknown backend")

// Names lists the backends Open knows, in display order (impl.Backends).
func Names() []string { return impl.Backends() }

// Opener returns the impl.Opener of the named backend.
func Opener(name string) (impl.Opener, error) {
	switch name {
	case impl.GoRedis:
		return func(ctx context.Context, cfg impl.ConnConfig) (impl.Backend, error) {
			c, err := goredis.Open(ctx, cfg)
			if err != nil {
				return nil, err // not a typed nil in a non-nil interface
			}
			return c, nil
		}, nil
	case impl.Rueidis:
		return func(ctx context.Context, cfg impl.ConnConfig) (impl.Backend, error) {
			c, err := rueidis.Open(ctx, cfg)
			if err != nil {
				return nil, err // not a typed nil in a non-nil interface
			}
			return c, nil
		}, nil
	}
	return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownBackend, name, Names())
}

// Open connects the named backend ("goredis" or "rueidis") with cfg.
func Open(ctx context.Context, name string, cfg impl.ConnConfig) (impl.Backend, error) {
	open, err := Opener(name)
	if err != nil {
		return nil, err
	}
	return open(ctx, cfg)
}
