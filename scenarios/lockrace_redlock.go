package scenarios

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
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
	// redlockFirstGap is the least time between two restarts of the first
	// server: each holds the cycles' harness calls for its length.
	redlockFirstGap = 500 * time.Millisecond
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
// is never on a majority of the N servers; for it the fault restarts the
// first server itself, without persistence, whenever the lock is held and
// a holder is inside (firstRestart).
type redlockFault struct {
	servers []redis.UniversalClient // every server's admin client, the first first
	peers   []RedlockPeer           // servers[1:]'s restart handles
	key     string
	quorum  int
	first   *firstRestart // the lock lives on the first server only

	wg                  sync.WaitGroup
	stop                context.CancelFunc
	bareSeen, restarted int64
	errs                []error
	// booksLost is the first restart of the first server that failed
	// after the server was killed (its start or the keys' restore): the
	// probe's books and the cell's other keys may be incomplete since.
	booksLost error
}

// firstRestart is the fault for a lock on the first server only: the
// server is restarted (SIGKILL, start again, no persistence) while a
// holder is inside. The restart loses the lock's keys — the lock key and
// its fencing counter — as a crash of that server would. The probe's
// books, the shared counter and the protected resource stand for state
// that lives elsewhere (a database): they are snapshot before the restart
// and restored after it, while the cycles' calls on them wait on gate.
type firstRestart struct {
	peer     RedlockPeer
	gate     *sync.RWMutex   // the cycles' harness calls hold it shared
	keys     impl.Keyspace   // the cell's keys: snapshot and restored
	lockKeys map[string]bool // the lock's own keys: lost
	inside   string          // the probe's inside set

	last       time.Time // the last restart's end
	start, end time.Time // the first restart's start, the last's end
}

// startRedlockFault starts the fault on env's Redlock deployment for the
// lock key; nil when env has no Redlock peers. With first set (a lock on
// the first server only) and the first server known, it restarts that
// server instead.
func startRedlockFault(ctx context.Context, env *Env, key string, first *firstRestart) *redlockFault {
	if len(env.Redlock) == 0 {
		return nil
	}
	f := &redlockFault{servers: []redis.UniversalClient{env.Admin}, peers: env.Redlock, key: key}
	for _, p := range env.Redlock {
		f.servers = append(f.servers, p.Admin())
	}
	f.quorum = len(f.servers)/2 + 1
	if first != nil && env.RedlockFirst != nil {
		first.peer = env.RedlockFirst
		f.first = first
	}
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
		if f.first != nil {
			f.tickFirst(ctx)
			continue
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

// tickFirst restarts the first server when the lock is held and a holder
// is inside, at most once every redlockFirstGap.
func (f *redlockFault) tickFirst(ctx context.Context) {
	r := f.first
	if time.Since(r.last) < redlockFirstGap {
		return
	}
	if !f.heldInside(ctx) {
		return
	}
	f.bareSeen++
	if err := f.restartFirst(ctx); err != nil {
		f.errs = append(f.errs, err)
	}
	r.last = time.Now()
}

// heldInside reports whether the lock key exists on the first server and
// the probe has a holder inside.
func (f *redlockFault) heldInside(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, redlockReadTimeout)
	defer cancel()
	var held *redis.IntCmd
	var inside *redis.IntCmd
	_, err := f.servers[0].Pipelined(rctx, func(p redis.Pipeliner) error {
		held = p.Exists(rctx, f.key)
		inside = p.ZCard(rctx, f.first.inside)
		return nil
	})
	return err == nil && held.Val() > 0 && inside.Val() > 0
}

// restartFirst restarts the first server: with the cycles' harness calls
// held back (gate), it snapshots every key of the cell but the lock's,
// restarts the server without persistence, and restores the snapshot.
func (f *redlockFault) restartFirst(ctx context.Context) error {
	r := f.first
	r.gate.Lock()
	defer r.gate.Unlock()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redlockRestartTimeout)
	defer cancel()
	admin := f.servers[0]
	if !f.heldInside(rctx) {
		return nil // the holder left meanwhile
	}
	snap, err := snapshotKeys(rctx, admin, r.keys.Pattern(), r.lockKeys)
	if err != nil {
		return fmt.Errorf("snapshot before restarting %s: %w", r.peer.Redacted(), err)
	}
	start := time.Now()
	if err := r.peer.Restart(rctx); err != nil {
		err = fmt.Errorf("restart %s: %w", r.peer.Redacted(), err)
		f.booksLost = cmp.Or(f.booksLost, err)
		return err
	}
	if err := restoreKeys(rctx, admin, snap); err != nil {
		err = fmt.Errorf("restore after restarting %s: %w", r.peer.Redacted(), err)
		f.booksLost = cmp.Or(f.booksLost, err)
		return err
	}
	if r.start.IsZero() {
		r.start = start
	}
	r.end = time.Now()
	f.restarted++
	return nil
}

// keySnapshot is one key as DUMP gave it, with its time to live (0: none).
type keySnapshot struct {
	key  string
	dump string
	ttl  time.Duration
}

// snapshotKeys dumps every key matching pattern (the run's
// impl.Keyspace.Pattern) but those in skip.
func snapshotKeys(ctx context.Context, admin redis.UniversalClient, pattern string, skip map[string]bool) ([]keySnapshot, error) {
	var keys []string
	iter := admin.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		if k := iter.Val(); !skip[k] {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	dumps := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	if _, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			dumps[i], ttls[i] = p.Dump(ctx, k), p.PTTL(ctx, k)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]keySnapshot, 0, len(keys))
	for i, k := range keys {
		if errors.Is(dumps[i].Err(), redis.Nil) {
			continue // gone meanwhile (expired)
		}
		ttl := ttls[i].Val()
		if ttl < 0 {
			ttl = 0
		}
		out = append(out, keySnapshot{key: k, dump: dumps[i].Val(), ttl: ttl})
	}
	return out, nil
}

// restoreKeys restores a snapshot, replacing what is there.
func restoreKeys(ctx context.Context, admin redis.UniversalClient, snap []keySnapshot) error {
	if len(snap) == 0 {
		return nil
	}
	_, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range snap {
			p.RestoreReplace(ctx, k.key, k.ttl, k.dump)
		}
		return nil
	})
	return err
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
	if f.first != nil {
		figs["redlock_first_held_seen"] = float64(f.bareSeen)
	} else {
		figs["redlock_bare_majorities"] = float64(f.bareSeen)
	}
	figs["redlock_restarts"] = float64(f.restarted)
	figs["redlock_restart_errors"] = float64(len(f.errs))
}

// summary is the cell's clause about the fault; live is how many times
// two holders were inside at once on live leases.
func (f *redlockFault) summary(live int64) string {
	s := fmt.Sprintf("; redlock: %d servers (quorum %d), ", len(f.servers), f.quorum)
	if f.first != nil {
		s += fmt.Sprintf("this lock runs on the first server only, restarted %d times without persistence while a holder was inside (the probe's books, the counter and the resource restored, the lock's keys lost)", f.restarted)
	} else {
		s += fmt.Sprintf("%d restarts without persistence of a server holding a bare majority", f.restarted)
	}
	s += fmt.Sprintf(": two holders held the lock at once (both leases live) %d times", live)
	if len(f.errs) > 0 {
		s += fmt.Sprintf(" (%d restarts failed: %v)", len(f.errs), f.errs[0])
	}
	return s
}

// faults is the cell's record of the first server's restarts
// (result.Cell.Faults), so that the runner knows the server restarted on
// purpose; nil when it never restarted it.
func (f *redlockFault) faults(origin time.Time) []result.Fault {
	if f == nil || f.first == nil || f.restarted == 0 {
		return nil
	}
	at := func(t time.Time) float64 {
		if origin.IsZero() {
			return 0
		}
		return t.Sub(origin).Seconds()
	}
	fl := result.Fault{Spec: "redlock-restart", Kind: faults.Restart, Method: "SIGKILL and restart, no persistence",
		Start: at(f.first.start), End: at(f.first.end), Count: int(f.restarted)}
	if len(f.errs) > 0 {
		fl.Error = f.errs[0].Error()
	}
	return []result.Fault{fl}
}
