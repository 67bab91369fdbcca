package rueidis

import (
	"errors"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
)

// Classify names the class of err (impl.Classes), recognising rueidis's own
// errors however wrapped: a server error reply (*rueidis.RedisError, whose
// MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING and NOSCRIPT rueidis tells
// itself, the rest by its text), a closing client or one that cannot
// connect (rueidis.ErrClosing), a protocol parse error and an EXEC aborted
// with the connection (ErrDoCacheAborted), all three connection failures;
// a nil reply is other; anything else goes to impl.Classify, which also
// knows the time-outs rueidis returns (context deadlines, i/o time-outs).
func (c *Client) Classify(err error) string { return classify(err) }

func classify(err error) string {
	if err == nil {
		return ""
	}
	var re *rd.RedisError
	if errors.As(err, &re) {
		if re.IsNil() {
			// Not an error reply: a nil reply an operation did not expect.
			return impl.ClassOther
		}
		if _, ok := re.IsMoved(); ok {
			return impl.ClassMoved
		}
		if _, ok := re.IsAsk(); ok {
			return impl.ClassAsk
		}
		switch {
		case re.IsTryAgain():
			return impl.ClassTryAgain
		case re.IsClusterDown():
			return impl.ClassClusterDown
		case re.IsLoading():
			return impl.ClassLoading
		case re.IsNoScript():
			return impl.ClassNoScript
		}
		return impl.ClassifyReply(re.Error())
	}
	switch {
	case errors.Is(err, rd.ErrClosing), errors.Is(err, rd.ErrDoCacheAborted), rd.IsParseErr(err):
		return impl.ClassConnection
	}
	return impl.Classify(err)
}
