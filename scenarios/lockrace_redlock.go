package scenarios

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timings of the Redlock restart fault.
const (
	// redlockPoll is how often the fault reads the lock key on every
	// server.
	redlockPoll = 5 * time.Millisecond
	// redlockReadTimeout bounds one round of reads (a server being
	// restarted does not answer).
	redlockReadTimeout = 20 * time.Millisecond
	// redlockRestartTimeout bounds one restart.
	redlockRestartTimeout = 10 * time.Second
)

// redlockFault is the fault that decides Redlock's argument: while
// lock-race runs on N independent servers, it reads the lock key on each
// every 5 ms, and when one holder's value is on exactly a quorum
// of servers (a bare majority: it won a split race, or lost servers),
// it restarts one of the other servers holding it, the first never (it
// keeps the probe's books), without persistence. The restarted server
// comes back empty, so a waiter can take the two free servers and the
// restarted one: a majority of its own while the first holder still holds
// what it believes is a valid lock. The probe counts such overlaps as
// live (both within their Redlock validity time).
//
// A lock that lives on the first server only (every strategy but redsync)
// never has a bare majority of the N servers, so the fault never fires in
// its cells: restarting the one server that holds its lock would wipe the
// lock and the probe alike.
type redlockFault struct {
	servers []redis.UniversalClient // every server's admin client, the first first
	peers   []RedlockPeer           // servers[1:]'s restart handles
	key     string
	quorum  int

	wg                  sync.WaitGroup
	stop                context.CancelFunc
	bareSeen, restarted int64
	errs                []error
}

// startRedlockFault starts the fault on env's Redlock deployment for the
// lock key; nil when env has no Redlock peers.
func startRedlockFault(ctx context.Context, env *Env, key string) *redlockFault {
	if len(env.Redlock) == 0 {
		return nil
	}
	f := &redlockFault{servers: []redis.UniversalClient{env.Admin}, peers: env.Redlock, key: key}
	for _, p := range env.Redlock {
		f.servers = append(f.servers, p.Admin())
	}
	f.quorum = len(f.servers)/2 + 1
	ctx, f.stop = context.WithCancel(ctx)
	f.wg.Go(func() { f.run(ctx) })
	return f
}

// Stop ends the fault and waits for a restart under way.
func (f *redlockFault) Stop() {
	if f == nil {
		return
	}
	f.stop()
	f.wg.Wait()
}

func (f *redlockFault) run(ctx context.Context) {
	t := time.NewTicker(redlockPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		holders, ok := f.read(ctx)
		if !ok {
			continue
		}
		peer := f.bareMajority(holders)
		if peer < 0 {
			continue
		}
		f.bareSeen++
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redlockRestartTimeout)
		err := f.peers[peer-1].Restart(rctx)
		cancel()
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("restart %s: %w", f.peers[peer-1].Redacted(), err))
			continue
		}
		f.restarted++
	}
}

// read returns the lock key's value on every server ("" where it is
// absent); ok is false when a server did not answer in time.
func (f *redlockFault) read(ctx context.Context) ([]string, bool) {
	rctx, cancel := context.WithTimeout(ctx, redlockReadTimeout)
	defer cancel()
	out := make([]string, len(f.servers))
	for i, s := range f.servers {
		v, err := s.Get(rctx, f.key).Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, false
		default:
			out[i] = v
		}
	}
	return out, true
}

// bareMajority returns the index (>= 1) of a server to restart: one
// holding a value that exactly a quorum of servers hold, when the quorum
// is short of every server; else -1.
func (f *redlockFault) bareMajority(holders []string) int {
	if f.quorum == len(holders) {
		return -1
	}
	count := map[string]int{}
	for _, v := range holders {
		if v != "" {
			count[v]++
		}
	}
	for i := 1; i < len(holders); i++ {
		if v := holders[i]; v != "" && count[v] == f.quorum {
			return i
		}
	}
	return -1
}

// fill adds the fault's figures to f.
func (f *redlockFault) fill(figs map[string]float64) {
	figs["redlock_servers"] = float64(len(f.servers))
	figs["redlock_quorum"] = float64(f.quorum)
	figs["redlock_bare_majorities"] = float64(f.bareSeen)
	figs["redlock_restarts"] = float64(f.restarted)
	figs["redlock_restart_errors"] = float64(len(f.errs))
}

// summary is the cell's clause about the fault.
func (f *redlockFault) summary(redlock bool) string {
	s := fmt.Sprintf("; redlock: %d servers (quorum %d), ", len(f.servers), f.quorum)
	if !redlock {
		s += "this lock runs on the first server only: it is never on a majority of them, so the restart fault never fired"
	} else {
		s += fmt.Sprintf("%d restarts without persistence of a server holding a bare majority", f.restarted)
	}
	if len(f.errs) > 0 {
		s += fmt.Sprintf(" (%d restarts failed: %v)", len(f.errs), f.errs[0])
	}
	return s
}
