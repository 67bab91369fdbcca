package goredis

import (
	"errors"
	"strings"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Classify names the class of err (impl.Classes), recognising go-redis's
// own errors however wrapped: a server error reply (redis.Error) by its
// text, the pool's time-out and exhaustion, a closed client, an EXEC that
// WATCH aborted (redis.TxFailedErr, contention), redis.Nil (other);
// anything else goes to impl.Classify.
func (c *Client) Classify(err error) string { return classify(err) }

func classify(err error) string {
	var re redis.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return impl.ClassPoolExhausted
	case errors.Is(err, redis.ErrClosed):
		return impl.ClassConnection
	case errors.Is(err, redis.TxFailedErr):
		return impl.ClassContention
	case errors.Is(err, redis.Nil):
		// Not an error reply: a nil reply an operation did not expect.
		return impl.ClassOther
	case errors.As(err, &re) && isServerReply(re.Error()):
		return impl.ClassifyReply(re.Error())
	}
	return impl.Classify(err)
}

// isServerReply tells a reply the server sent from the errors go-redis
// makes up itself as redis.Error values ("redis: ...").
func isServerReply(msg string) bool {
	code, _, _ := strings.Cut(msg, " ")
	return code != "" && code != "redis:"
}
