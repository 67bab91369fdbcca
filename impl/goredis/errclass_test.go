package goredis_test

import (
	"errors"
	"fmt"
	"testing"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/goredis"
)

// TestClassifyLibraryErrors checks go-redis's own errors, wrapped as the
// operation families wrap them; the server's replies are checked against a
// real Redis by impltest.RunClassify.
func TestClassifyLibraryErrors(t *testing.T) {
	c := new(goredis.Client) // Classify reads no connection
	wrap := func(err error) error { return fmt.Errorf("goredis stock lua: deduct %q: %w", "sku", err) }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{wrap(redis.ErrPoolTimeout), impl.ClassPoolExhausted},
		{wrap(redis.ErrPoolExhausted), impl.ClassPoolExhausted},
		{wrap(redis.ErrClosed), impl.ClassConnection},
		{wrap(redis.TxFailedErr), impl.ClassContention},
		{wrap(redis.Nil), impl.ClassOther},
		{wrap(redis.ErrNoScript), impl.ClassNoScript},
		{wrap(redis.ErrCrossSlot), impl.ClassCrossSlot},
		{errors.Join(errors.New("pipeline"), wrap(redis.ErrNoScript)), impl.ClassNoScript},
		{wrap(impl.ErrContention), impl.ClassContention},
		{wrap(errors.New("something odd")), impl.ClassOther},
	} {
		if got := c.Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
