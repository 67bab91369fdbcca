package redisenv

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
)

// failing is a go-redis "next" that fails with err the first n calls.
type failing struct {
	n, calls int
	err      error
}

func (f *failing) process(ctx context.Context, cmd redis.Cmder) error {
	f.calls++
	if f.calls <= f.n {
		cmd.SetErr(f.err)
		return f.err
	}
	return nil
}

func (f *failing) pipeline(ctx context.Context, cmds []redis.Cmder) error {
	return f.process(ctx, cmds[0])
}

func TestAdminRetriesOnlyReadsOnTheNetwork(t *testing.T) {
	ctx := context.Background()
	loading := redisReply("LOADING Redis is loading the dataset in memory")
	reset := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, tc := range []struct {
		name      string
		cmds      []redis.Cmder
		fails     int
		err       error
		wantCalls int
		wantErr   bool
	}{
		{"a read re-sent after a reset", []redis.Cmder{redis.NewStringCmd(ctx, "get", "k")}, 2, reset, 3, false},
		{"a read re-sent after EOF", []redis.Cmder{redis.NewIntCmd(ctx, "exists", "k")}, 1, io.EOF, 2, false},
		{"a read gives up after three re-sends", []redis.Cmder{redis.NewStringCmd(ctx, "get", "k")}, 10, reset, 1 + adminRetries, true},
		{"a write is never re-sent", []redis.Cmder{redis.NewIntCmd(ctx, "incr", "k")}, 1, reset, 1, true},
		{"a read re-sent while the server loads", []redis.Cmder{redis.NewStringCmd(ctx, "get", "k")}, 2, loading, 3, false},
		{"a server reply is not re-sent", []redis.Cmder{redis.NewStringCmd(ctx, "get", "k")}, 1, redis.Nil, 1, true},
		{"a pipeline of reads is re-sent", []redis.Cmder{redis.NewStringCmd(ctx, "get", "k"), redis.NewDurationCmd(ctx, 1, "pttl", "k")}, 1, reset, 2, false},
		{"a pipeline with a write is not", []redis.Cmder{redis.NewStringCmd(ctx, "get", "k"), redis.NewStatusCmd(ctx, "set", "k", "v")}, 1, reset, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &failing{n: tc.fails, err: tc.err}
			var err error
			if len(tc.cmds) == 1 {
				err = retryReads{}.ProcessHook(f.process)(ctx, tc.cmds[0])
			} else {
				err = retryReads{}.ProcessPipelineHook(f.pipeline)(ctx, tc.cmds)
			}
			if f.calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Fatalf("%d calls, err %v; want %d calls, error %v", f.calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

// redisReply is an error reply as go-redis reports one.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (e redisReply) RedisError()   {}
