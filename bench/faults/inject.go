package faults

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/reports/result"
)

// Proxy is what network faults need of the in-process proxy between the
// clients under test and the server.
type Proxy interface {
	// SetLatency adds d to each reply from now on (0 removes it).
	SetLatency(d time.Duration)
	// ResetAll resets every open client connection and says how many.
	ResetAll() int
}

// Target is what a schedule is applied to.
type Target struct {
	// Server is the Redis under test; its admin client does the work.
	Server *redisenv.Server
	// Clients names the connections kill-conns kills (CLIENT SETNAME of
	// the backend under test); never the admin client's.
	Clients []string
	// Proxy carries latency and reset faults (nil when none is asked for).
	Proxy Proxy
	// Keys are SCAN patterns of the cell's keys, its hot keys first: a
	// reshard moves the slots of the first that matches any key.
	Keys []string
}

// Check says, before any work, whether every spec can be applied to a
// server of this kind, with or without a proxy.
func Check(specs []Spec, kind redisenv.Kind, proxied bool) error {
	for _, s := range specs {
		switch {
		case s.Kind == Restart && kind != redisenv.KindSpawn:
			return fmt.Errorf("fault %s: only a server paybench spawns can be restarted (this one is %s); use --redis spawn", s, kind)
		case s.Kind == Failover && s.Mode == ForceMode && kind != redisenv.KindCluster:
			return fmt.Errorf("fault %s stops a master's process: only a cluster paybench spawns (--redis cluster) can take it; failover@AT works on any cluster", s)
		case kind == redisenv.KindEmbedded && s.Kind != Latency && s.Kind != Reset:
			return fmt.Errorf("fault %s: the embedded server cannot be paused, killed or filled; use --redis spawn", s)
		case s.NeedsProxy() && !proxied:
			return fmt.Errorf("fault %s needs the in-process proxy, which needs a TCP server (not unix://)", s)
		}
	}
	return nil
}

// CheckCluster says, before any work, whether every spec can be applied
// to the server: on a Redis Cluster only the cluster kinds, elsewhere
// none of them.
func CheckCluster(specs []Spec, cluster bool) error {
	for _, s := range specs {
		switch {
		case cluster && !s.IsCluster():
			return fmt.Errorf("fault %s acts on one server and is not supported on a Redis Cluster (on a cluster: %s)", s, strings.Join(ClusterKinds(), ", "))
		case !cluster && s.IsCluster():
			return fmt.Errorf("fault %s needs a Redis Cluster (--redis cluster, or --cluster with its URL)", s)
		}
	}
	return nil
}

// Run is a schedule being applied to one cell.
type Run struct {
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	log    []result.Fault
}

// Start applies specs to t, each at its time from now; ctx bounds the
// whole schedule. Stop ends it.
func Start(ctx context.Context, t Target, specs []Spec) *Run {
	ctx, cancel := context.WithCancel(ctx)
	r := &Run{start: time.Now(), cancel: cancel, log: make([]result.Fault, len(specs))}
	for i, s := range specs {
		r.log[i] = result.Fault{Spec: s.String(), Kind: s.Kind}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.apply(ctx, t, i, s)
		}()
	}
	return r
}

// Started returns the schedule's origin, the cell's start: the fault log's
// Start and End are seconds from it.
func (r *Run) Started() time.Time { return r.start }

// Stop ends every fault still active (a paused server resumes, memory
// and latency are restored), waits for them, and returns what happened.
// The server is left as it was found, except for a restart's lost data.
func (r *Run) Stop() []result.Fault {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]result.Fault(nil), r.log...)
}

// since is the time from the cell's start, in seconds.
func (r *Run) since() float64 { return time.Since(r.start).Seconds() }

// note records one firing of fault i.
func (r *Run) note(i int, method string, start float64, hits int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := &r.log[i]
	if f.Count == 0 {
		f.Start = start
	}
	f.Count++
	f.End = r.since()
	f.Method = method
	f.Hits += hits
	if err != nil && f.Error == "" {
		f.Error = oneLine(err.Error())
	}
}

// wait sleeps until d after the start; false when ctx ended first.
func (r *Run) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(time.Until(r.start.Add(d)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// hold waits d, or until ctx ends; it reports nothing.
func hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// apply runs one spec: waits for its time, fires it (repeatedly for
// Every), and ends it after its length or when ctx ends.
func (r *Run) apply(ctx context.Context, t Target, i int, s Spec) {
	if !r.wait(ctx, s.At) {
		return
	}
	// Work that ends a fault must happen even when the cell is over.
	bg := context.WithoutCancel(ctx)
	for n := 0; ; n++ {
		start := r.since()
		switch s.Kind {
		case Pause:
			method, err := pause(bg, ctx, t.Server, s.Arg)
			r.note(i, method, start, 0, err)
		case KillConns:
			hits, err := killConns(bg, t.Server.Admin(), t.Clients)
			r.note(i, "CLIENT KILL ID", start, hits, err)
		case Restart:
			err := t.Server.Restart(bg)
			r.note(i, "SIGKILL, then restarted on its port", start, 0, err)
		case OOM:
			r.note(i, "CONFIG SET maxmemory (noeviction)", start, 0, fillUp(bg, ctx, t.Server.Admin(), s.For))
		case Latency:
			t.Proxy.SetLatency(s.Arg)
			if s.For > 0 {
				hold(ctx, s.For)
			} else {
				<-ctx.Done()
			}
			t.Proxy.SetLatency(0)
			r.note(i, "proxy", start, 0, nil)
		case Reset:
			r.note(i, "proxy (TCP RST)", start, t.Proxy.ResetAll(), nil)
		case Reshard:
			// A migration is finished even when the cell ends first: a
			// slot left MIGRATING would trouble every cell after it.
			mctx, cancel := context.WithTimeout(bg, clusterFaultTimeout)
			mv, err := t.Server.MoveSlots(mctx, t.Keys...)
			cancel()
			r.note(i, "CLUSTER SETSLOT + MIGRATE: "+mv.String(), start, 0, err)
		case Failover:
			// Like a reshard, a failover is seen through to a settled
			// cluster (a stopped master always resumed).
			fctx, cancel := context.WithTimeout(bg, clusterFaultTimeout)
			fo, err := t.Server.FailOver(fctx, s.Mode == ForceMode, t.Keys...)
			cancel()
			r.note(i, fo.String(), start, 0, err)
		}
		if s.Every <= 0 || !r.wait(ctx, s.At+time.Duration(n+1)*s.Every) {
			return
		}
	}
}

// pause stops the server from answering for d: SIGSTOP/SIGCONT for a
// spawned server, CLIENT PAUSE for any other. It returns early, resuming
// the server, when stop ends.
func pause(bg, stop context.Context, srv *redisenv.Server, d time.Duration) (string, error) {
	if srv.Kind == redisenv.KindSpawn {
		pid := srv.PID()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			return "SIGSTOP", fmt.Errorf("SIGSTOP %d: %w", pid, err)
		}
		hold(stop, d)
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			return "SIGSTOP/SIGCONT", fmt.Errorf("SIGCONT %d: %w", pid, err)
		}
		return "SIGSTOP/SIGCONT", nil
	}
	ms := strconv.FormatInt(max(d.Milliseconds(), 1), 10)
	if err := srv.Admin().Do(bg, "CLIENT", "PAUSE", ms, "ALL").Err(); err != nil {
		return "CLIENT PAUSE", err
	}
	hold(stop, d)
	if stop.Err() != nil {
		_ = srv.Admin().Do(bg, "CLIENT", "UNPAUSE").Err()
	}
	return "CLIENT PAUSE", nil
}

// killConns kills every connection named in names, one CLIENT KILL ID
// each, and returns how many it killed; on a cluster, on every master.
func killConns(ctx context.Context, admin redis.UniversalClient, names []string) (int, error) {
	var mu sync.Mutex
	killed := 0
	err := redisenv.ForEachMaster(ctx, admin, func(ctx context.Context, node *redis.Client) error {
		n, err := killConnsOn(ctx, node, names)
		mu.Lock()
		killed += n
		mu.Unlock()
		return err
	})
	return killed, err
}

// killConnsOn is killConns on one server: CLIENT LIST and CLIENT KILL ID
// on the same node (ids are per node).
func killConnsOn(ctx context.Context, admin *redis.Client, names []string) (int, error) {
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("CLIENT LIST: %w", err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	killed := 0
	var errs []error
	for _, line := range strings.Split(list, "\n") {
		id, name := "", ""
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			} else if v, ok := strings.CutPrefix(f, "name="); ok {
				name = v
			}
		}
		if id == "" || !want[name] {
			continue
		}
		n, err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Int()
		if err != nil {
			errs = append(errs, fmt.Errorf("CLIENT KILL ID %s: %w", id, err))
		}
		killed += n
	}
	return killed, errors.Join(errs...)
}

// clusterFaultTimeout bounds one reshard or failover.
const clusterFaultTimeout = 2 * time.Minute

// oomHeadroom is how far above the memory in use maxmemory is set.
const oomHeadroom = 256 << 10

// fillUp sets maxmemory just above the memory in use, with noeviction, so
// that every write is refused with OOM; after d (0: when stop ends) it
// restores both settings.
func fillUp(bg, stop context.Context, admin redis.UniversalClient, d time.Duration) error {
	prev, err := admin.ConfigGet(bg, "maxmemory*").Result()
	if err != nil {
		return fmt.Errorf("CONFIG GET maxmemory: %w", err)
	}
	info, err := admin.Info(bg, "memory").Result()
	if err != nil {
		return fmt.Errorf("INFO memory: %w", err)
	}
	var used int64
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			used, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if used <= 0 {
		return errors.New("INFO memory has no used_memory")
	}
	if err := admin.ConfigSet(bg, "maxmemory-policy", "noeviction").Err(); err != nil {
		return fmt.Errorf("CONFIG SET maxmemory-policy: %w", err)
	}
	if err := admin.ConfigSet(bg, "maxmemory", strconv.FormatInt(used+oomHeadroom, 10)).Err(); err != nil {
		return fmt.Errorf("CONFIG SET maxmemory: %w", err)
	}
	if d > 0 {
		hold(stop, d)
	} else {
		<-stop.Done()
	}
	var errs []error
	for _, k := range []string{"maxmemory", "maxmemory-policy"} {
		if v, ok := prev[k]; ok {
			if err := admin.ConfigSet(bg, k, v).Err(); err != nil {
				errs = append(errs, fmt.Errorf("restore %s %s: %w", k, v, err))
			}
		}
	}
	return errors.Join(errs...)
}

// oneLine returns the first line of s.
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// KillNamedConns kills every connection whose CLIENT SETNAME is one of names,
// one CLIENT KILL ID each, with admin (which must not bear such a name),
// and returns how many it killed. Scenarios that make their own faults use
// it, as the kill-conns fault does.
func KillNamedConns(ctx context.Context, admin redis.UniversalClient, names ...string) (int, error) {
	return killConns(ctx, admin, names)
}
