package redisenv

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// adminRetries is how many times the admin client re-sends a read that
// failed on the network.
const adminRetries = 5

// readOnly names the commands the admin client reads the server with; only
// these are retried, since sending them twice changes nothing.
var readOnly = map[string]bool{
	"get": true, "mget": true, "exists": true, "type": true, "ttl": true, "pttl": true, "strlen": true,
	"hget": true, "hmget": true, "hgetall": true, "hlen": true, "hexists": true, "hscan": true, "hkeys": true, "hvals": true,
	"lrange": true, "llen": true, "lindex": true,
	"smembers": true, "scard": true, "sismember": true, "sscan": true,
	"zrange": true, "zrangebyscore": true, "zcard": true, "zcount": true, "zscore": true, "zscan": true, "zrevrange": true,
	"xrange": true, "xlen": true, "xrevrange": true,
	"scan": true, "keys": true, "dbsize": true, "info": true, "time": true, "ping": true, "memory": true,
}

// retryReads is a go-redis hook that re-sends the admin client's reads —
// single commands and pipelines made only of reads — when they fail on
// the network (a dropped connection, a time-out) or meet a server still
// loading its data after a restart, up to adminRetries times with a short
// back-off (50 ms doubling), so that paybench's own bookkeeping
// survives a blip that the operations under test are judged on. Writes
// are never re-sent.
type retryReads struct{}

func (retryReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (retryReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !readOnly[strings.ToLower(cmd.Name())] {
			return err
		}
		for i := 0; i < adminRetries && retriable(ctx, err); i++ {
			if !backoff(ctx, i) {
				break
			}
			cmd.SetErr(nil)
			err = next(ctx, cmd)
		}
		return err
	}
}

func (retryReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if !readOnly[strings.ToLower(c.Name())] {
				return err
			}
		}
		for i := 0; i < adminRetries && retriable(ctx, err); i++ {
			if !backoff(ctx, i) {
				break
			}
			for _, c := range cmds {
				c.SetErr(nil)
			}
			err = next(ctx, cmds)
		}
		return err
	}
}

// retriable reports whether err is a network failure worth another try
// while ctx lives: not a reply of the server, not the caller's own end.
func retriable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, redis.Nil) {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		// A server that is loading its data after a restart answers
		// again in a moment; any other reply is final.
		return strings.HasPrefix(re.Error(), "LOADING")
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// backoff waits before try i+1 (50 ms, doubling); false when ctx ended
// first.
func backoff(ctx context.Context, i int) bool {
	t := time.NewTimer(50 * time.Millisecond << i)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
