package rueidis_test

import (
	"context"
	"errors"
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/rueidis"
)

// TestOpenUnsupportedReadTimeout: go-redis reads a URL read_timeout of 0
// or less as "no time-out"; rueidis has none, so Open says so (before
// connecting: nothing listens on port 1) rather than ignoring it.
func TestOpenUnsupportedReadTimeout(t *testing.T) {
	for _, q := range []string{"read_timeout=0", "read_timeout=-1"} {
		b, err := rueidis.Open(context.Background(), impl.ConnConfig{URL: "redis://127.0.0.1:1/0?" + q})
		if err == nil {
			_ = b.Close()
			t.Fatalf("Open with %s: no error", q)
		}
		if !errors.Is(err, impl.ErrNotSupported) {
			t.Errorf("Open with %s: %v, want an error wrapping impl.ErrNotSupported", q, err)
		}
	}
}
