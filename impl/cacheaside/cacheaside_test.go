package cacheaside_test

import (
	"errors"
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/cacheaside"
)

func TestNewErrors(t *testing.T) {
	ks := impl.MustKeyspace("t:")
	if _, err := cacheaside.New(nil, "nope", impl.CacheOptions{Keys: ks, Origin: nilOrigin{}}); !errors.Is(err, impl.ErrUnknownStrategy) {
		t.Errorf("unknown strategy: %v", err)
	}
	// A store without a client-side cache cannot serve client-side.
	if _, err := cacheaside.New(nil, impl.CacheClientSide, impl.CacheOptions{Keys: ks, Origin: nilOrigin{}}); !errors.Is(err, impl.ErrNotSupported) {
		t.Errorf("client-side on a plain store: %v", err)
	}
	if _, err := cacheaside.New(nil, impl.CacheNaive, impl.CacheOptions{Keys: ks, Origin: nilOrigin{}, Write: "x"}); !errors.Is(err, impl.ErrUnknownStrategy) {
		t.Errorf("unknown write mode: %v", err)
	}
}

// nilOrigin is an Origin that is never called.
type nilOrigin struct{ impl.Origin }
