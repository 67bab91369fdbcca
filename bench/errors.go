package bench

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
)

// Error classes.
const (
	ClassTimeout    = "timeout"
	ClassCanceled   = "canceled"
	ClassConn       = "connection"
	ClassAuth       = "auth"
	ClassContention = "contention"
	ClassScript     = "script"
	ClassRedis      = "redis"
	ClassOther      = "other"
)

// ClassifyError maps an operation error to a class for the report.
func ClassifyError(err error) string {
	if err == nil {
		return ""
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, impl.ErrContention):
		return ClassContention
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "WRONGPASS"):
		return ClassAuth
	case strings.Contains(msg, "NOSCRIPT"), strings.Contains(msg, "ERR Error running script"), strings.Contains(msg, "user_script"):
		return ClassScript
	}
	var oe *net.OpError
	if errors.As(err, &oe) || strings.Contains(msg, "connection refused") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "EOF") {
		return ClassConn
	}
	if isRedisReply(err) {
		return ClassRedis
	}
	if len(msg) > 0 && msg[0] >= 'A' && msg[0] <= 'Z' && strings.Contains(msg, " ") {
		// An unwrapped error reply of another client: it starts with an
		// upper-case code (ERR, WRONGTYPE, ...).
		return ClassRedis
	}
	return ClassOther
}

// isRedisReply reports whether err, however wrapped, is an error reply from
// the server (ERR, WRONGTYPE, ...) as either client library reports it.
func isRedisReply(err error) bool {
	var ge redis.Error
	if errors.As(err, &ge) {
		return true
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return true
	}
	var re *rueidis.RedisError
	return errors.As(err, &re)
}
