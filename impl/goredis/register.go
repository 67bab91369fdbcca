package goredis

import (
	"context"

	"github.com/paybench/paybench/impl"
)

func init() {
	impl.RegisterBackend(impl.GoRedis, func(ctx context.Context, cfg impl.ConnConfig) (impl.Backend, error) {
		c, err := Open(ctx, cfg)
		if err != nil {
			return nil, err // not a typed nil in a non-nil interface
		}
		return c, nil
	})
}
