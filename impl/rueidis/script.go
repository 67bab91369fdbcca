package rueidis

import (
	"context"
	"fmt"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
)

// Compile-time checks.
var (
	_ impl.ScriptBackend = (*Client)(nil)
	_ impl.Script        = (*script)(nil)
)

// Script returns src as a rueidis.Lua on this client (EVALSHA with EVAL
// fallback).
func (c *Client) Script(src string) impl.Script {
	return &script{rc: c.rc, s: rd.NewLuaScript(src)}
}

// script is impl.Script on rueidis.
type script struct {
	rc rd.Client
	s  *rd.Lua
}

// Run implements impl.Script.
func (s *script) Run(ctx context.Context, keys []string, args ...string) ([]int64, error) {
	msg, err := s.s.Exec(ctx, s.rc, keys, args).ToMessage()
	if rd.IsRedisNil(err) {
		return []int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rueidis script: %w", err)
	}
	switch {
	case msg.IsInt64():
		n, err := msg.AsInt64()
		if err != nil {
			return nil, fmt.Errorf("rueidis script: %w", err)
		}
		return []int64{n}, nil
	case msg.IsArray():
		out, err := msg.AsIntSlice()
		if err != nil {
			return nil, fmt.Errorf("rueidis script: the reply is not an array of integers: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("rueidis script: the reply is %s, not an integer or an array of integers", msg.String())
}
