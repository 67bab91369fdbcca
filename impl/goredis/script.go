package goredis

import (
	"context"
	"errors"
	"fmt"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Compile-time checks.
var (
	_ impl.ScriptBackend = (*Client)(nil)
	_ impl.Script        = (*script)(nil)
)

// Script returns src as a redis.Script on this client (EVALSHA, EVAL on
// NOSCRIPT).
func (c *Client) Script(src string) impl.Script {
	return &script{rdb: c.rdb, s: redis.NewScript(src)}
}

// script is impl.Script on go-redis.
type script struct {
	rdb redis.UniversalClient
	s   *redis.Script
}

// Run implements impl.Script.
func (s *script) Run(ctx context.Context, keys []string, args ...string) ([]int64, error) {
	argv := make([]any, len(args))
	for i, a := range args {
		argv[i] = a
	}
	v, err := s.s.Run(ctx, s.rdb, keys, argv...).Result()
	if errors.Is(err, redis.Nil) {
		return []int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("goredis script %.8s: %w", s.s.Hash(), err)
	}
	switch v := v.(type) {
	case int64:
		return []int64{v}, nil
	case []any:
		out := make([]int64, len(v))
		for i, e := range v {
			n, ok := e.(int64)
			if !ok {
				return nil, fmt.Errorf("goredis script %.8s: element %d of the reply is %T, not an integer", s.s.Hash(), i, e)
			}
			out[i] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("goredis script %.8s: the reply is %T, not an integer or an array of integers", s.s.Hash(), v)
}
