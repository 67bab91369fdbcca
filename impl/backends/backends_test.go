package backends_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/impl/impltest"
)

func TestNames(t *testing.T) {
	if got, want := backends.Names(), []string{impl.GoRedis, impl.Rueidis}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

func TestOpenUnknown(t *testing.T) {
	for _, name := range []string{"", "redigo", "GoRedis"} {
		b, err := backends.Open(context.Background(), name, impl.ConnConfig{URL: "redis://127.0.0.1:1"})
		if !errors.Is(err, backends.ErrUnknownBackend) || b != nil {
			t.Errorf("Open(%q) = %v, %v; want nil, ErrUnknownBackend", name, b, err)
		}
	}
}

func TestOpen(t *testing.T) {
	env := impltest.Embedded(t)
	for _, name := range backends.Names() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			b, err := backends.Open(ctx, name, env.Conn)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if b.Name() != name {
				t.Errorf("Name() = %q, want %q", b.Name(), name)
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	for _, name := range backends.Names() {
		b, err := backends.Open(t.Context(), name, impl.ConnConfig{URL: "redis://127.0.0.1:1"})
		if err == nil || b != nil {
			t.Errorf("Open(%q) on a closed port = %v, %v; want nil and an error", name, b, err)
		}
	}
}
