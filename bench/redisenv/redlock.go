package redisenv

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// KindRedlock spawns N independent single redis-servers (not a cluster,
// no replication between them), as the Redlock algorithm assumes: the
// first is the Server Provide returns, the others its RedlockPeers. Every
// one is stopped when the first is closed. Written "redlock" (N =
// DefaultRedlockServers) or "redlock:N".
const KindRedlock Kind = "redlock"

// DefaultRedlockServers is N of a plain "redlock": the five servers the
// Redlock algorithm's description uses.
const DefaultRedlockServers = 5

// MaxRedlockServers bounds N.
const MaxRedlockServers = 15

// ParseRedlock reads "redlock" or "redlock:N". ok is false when s is no
// redlock kind at all; err is set when it is one with a bad N (any of
// 1..MaxRedlockServers; Redlock's quorum is N/2+1).
func ParseRedlock(s string) (n int, ok bool, err error) {
	if s == string(KindRedlock) {
		return DefaultRedlockServers, true, nil
	}
	rest, found := strings.CutPrefix(s, string(KindRedlock)+":")
	if !found {
		return 0, false, nil
	}
	n, err = strconv.Atoi(rest)
	if err != nil || n < 1 || n > MaxRedlockServers {
		return 0, true, fmt.Errorf("%w %q: redlock:N needs N of 1..%d independent servers", ErrBadKind, s, MaxRedlockServers)
	}
	return n, true, nil
}

// RedlockPeers returns the other servers of a redlock kind (nil for any
// other kind), in order: the second server first.
func (s *Server) RedlockPeers() []*Server { return s.redlock }

// provideRedlock spawns o.RedlockServers servers (DefaultRedlockServers
// when 0), each as spawn does, and returns the first with the others as
// its peers. If any fails to start, those already started are stopped.
func provideRedlock(ctx context.Context, o Options) (*Server, error) {
	n := o.RedlockServers
	if n == 0 {
		n = DefaultRedlockServers
	}
	if n < 1 || n > MaxRedlockServers {
		return nil, fmt.Errorf("%w: redlock with %d servers (1..%d)", ErrBadKind, n, MaxRedlockServers)
	}
	servers := make([]*Server, 0, n)
	stopAll := func() error {
		var errs []error
		for _, s := range servers {
			errs = append(errs, s.Close())
		}
		return errors.Join(errs...)
	}
	for i := range n {
		s, err := spawn(ctx, o, "")
		if err != nil {
			return nil, errors.Join(fmt.Errorf("redlock server %d of %d: %w", i+1, n, err), stopAll())
		}
		s.Kind = KindRedlock
		servers = append(servers, s)
	}
	first := servers[0]
	first.redlock = servers[1:]
	own := first.release
	first.release = func() error {
		var errs []error
		for _, p := range first.redlock {
			errs = append(errs, p.Close())
		}
		return errors.Join(append(errs, own())...)
	}
	return first, nil
}
