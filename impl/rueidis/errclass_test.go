package rueidis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/rueidis"
)

// TestClassifyLibraryErrors checks rueidis's own errors, wrapped as the
// operation families wrap them; the server's replies are checked against a
// real Redis by impltest.RunClassify.
func TestClassifyLibraryErrors(t *testing.T) {
	c := new(rueidis.Client) // Classify reads no connection
	wrap := func(err error) error { return fmt.Errorf("rueidis stock lua: deduct %q: %w", "sku", err) }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{wrap(rd.ErrClosing), impl.ClassConnection},
		{wrap(rd.ErrDoCacheAborted), impl.ClassConnection},
		{wrap(rd.Nil), impl.ClassOther},
		{wrap(context.DeadlineExceeded), impl.ClassTimeout},
		{wrap(impl.ErrContention), impl.ClassContention},
		{wrap(errors.New("something odd")), impl.ClassOther},
	} {
		if got := c.Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
