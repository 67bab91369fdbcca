package scenarios

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/origin"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newCacheStampede() }) }

// CacheStampede is the hot key expiring under load: many workers, spread
// over several application instances (separate backend connections), read
// one record through the cache while its entry expires again and again.
// Each expiry sends readers to the origin; the scenario counts, from the
// origin's own log, how many loads each expiry caused.
type CacheStampede struct {
	// Instances is the number of application instances (backends).
	Instances int
	// TTL is the entry's TTL: the hot key expires every TTL.
	TTL time.Duration
	// LoadLatency is how long one load from the origin takes.
	LoadLatency time.Duration
	// Window groups loads into expiries: a load that starts less than
	// Window after an expiry's first load belongs to it (0: two load
	// latencies; an expiry's loads all start before the first reload
	// lands, one load latency later).
	Window time.Duration
	// Beta is the early strategy's XFetch factor.
	Beta float64
	// Think is each worker's pause after a read, as a request handler
	// does other work. At 0 a worker still yields the processor after
	// each read (runtime.Gosched): workers served from a client-side cache
	// in a microsecond never block, and would otherwise starve the
	// goroutines that read replies and invalidations off the network,
	// distorting every network latency on a small machine.
	Think time.Duration
	// Duration is the default length of a cell.
	Duration time.Duration
}

func newCacheStampede() *CacheStampede {
	return &CacheStampede{Instances: 4, TTL: 400 * time.Millisecond, LoadLatency: 20 * time.Millisecond, Beta: 1, Duration: 2 * time.Second}
}

// Name implements Scenario.
func (s *CacheStampede) Name() string { return "cache-stampede" }

// Description implements Scenario.
func (s *CacheStampede) Description() string {
	return "a hot cache key expires under load; the seed's cache-aside sends every reader to the database at once"
}

// Strategies implements Scenario.
func (s *CacheStampede) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.CacheNaive, Expect: result.Break, Note: "the seed's cache-aside: every reader that misses loads"},
		{Name: impl.CacheSingleflight, Expect: result.Hold, Note: "one load per key per instance (x/sync/singleflight)"},
		{Name: impl.CacheLock, Expect: result.Hold, Note: "one rebuild under a short Redis lock; others get the stale value or wait"},
		{Name: impl.CacheEarly, Expect: result.Hold, Note: "probabilistic early expiration (XFetch), the rebuild claimed with the lock"},
		{Name: impl.CacheClientSide, Expect: result.Hold, Note: "rueidis DoCache with server-assisted invalidation; misses collapse per instance"},
	}
}

// Flags implements Scenario.
func (s *CacheStampede) Flags(fs *pflag.FlagSet) {
	fs.IntVar(&s.Instances, "instances", s.Instances, "application instances (separate backends) the workers are spread over")
	fs.DurationVar(&s.TTL, "ttl", s.TTL, "the hot entry's TTL")
	fs.DurationVar(&s.LoadLatency, "load-latency", s.LoadLatency, "how long one load from the origin (the database) takes")
	fs.DurationVar(&s.Window, "window", s.Window, "loads starting within this of an expiry's first load count for it (0: 2 × load latency)")
	fs.Float64Var(&s.Beta, "beta", s.Beta, "early only: XFetch beta (> 1 recomputes earlier)")
	fs.DurationVar(&s.Think, "think", s.Think, "each worker's pause after a read, other work of a request (0: yield only)")
}

// Validate implements Scenario.
func (s *CacheStampede) Validate() error {
	switch {
	case s.Instances < 1 || s.Instances > 64:
		return fmt.Errorf("--instances must be 1..64, got %d", s.Instances)
	case s.TTL < 10*time.Millisecond:
		return fmt.Errorf("--ttl must be at least 10ms, got %s", s.TTL)
	case s.LoadLatency < 0:
		return fmt.Errorf("--load-latency must be >= 0, got %s", s.LoadLatency)
	case s.Window < 0:
		return fmt.Errorf("--window must be >= 0, got %s", s.Window)
	case s.Think < 0:
		return fmt.Errorf("--think must be >= 0, got %s", s.Think)
	case s.Beta <= 0:
		return fmt.Errorf("--beta must be > 0, got %v", s.Beta)
	}
	if w := s.window(); w >= s.TTL/2 {
		return fmt.Errorf("the expiry window %s must be under half the TTL %s (lower --load-latency or --window, or raise --ttl)", w, s.TTL)
	}
	return nil
}

// window returns the expiry window in effect.
func (s *CacheStampede) window() time.Duration {
	if s.Window > 0 {
		return s.Window
	}
	return max(2*s.LoadLatency, time.Millisecond)
}

// Params implements Scenario.
func (s *CacheStampede) Params() map[string]string {
	return map[string]string{
		"instances":    strconv.Itoa(s.Instances),
		"ttl":          s.TTL.String(),
		"load_latency": s.LoadLatency.String(),
		"window":       s.window().String(),
		"beta":         strconv.FormatFloat(s.Beta, 'g', -1, 64),
		"think":        s.Think.String(),
	}
}

// hotID is the one record of the stampede.
const hotID = "hot"

// stampedeLockTTL is the rebuild lock's TTL and the longest wait for a
// rebuild (lock, early).
const stampedeLockTTL = 5 * time.Second

// expiry is one expiry of the hot key and the loads it caused.
type expiry struct {
	start       time.Time
	loads       int
	perInstance map[int]int
}

// groupExpiries groups loads (in any order) into expiries: a load that
// starts less than window after the current expiry's first load belongs to
// it, a later one starts the next expiry.
func groupExpiries(loads []origin.Load, window time.Duration) []expiry {
	slices.SortFunc(loads, func(a, b origin.Load) int { return a.At.Compare(b.At) })
	var out []expiry
	for _, l := range loads {
		if len(out) == 0 || l.At.Sub(out[len(out)-1].start) >= window {
			out = append(out, expiry{start: l.At, perInstance: map[int]int{}})
		}
		e := &out[len(out)-1]
		e.loads++
		e.perInstance[l.Client]++
	}
	return out
}

// Run implements Scenario.
func (s *CacheStampede) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	dur := env.Common.Duration
	if dur <= 0 {
		dur = s.Duration
	}
	if dur < 2*s.TTL {
		return cell, fmt.Errorf("a cell of %s sees fewer than two expiries of a %s TTL: run longer", dur, s.TTL)
	}
	if env.Open == nil && s.Instances > 1 {
		return cell, errors.New("cache-stampede needs Env.Open to connect its extra instances")
	}
	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}

	o := origin.New(origin.Options{LoadLatency: s.LoadLatency})
	rec := o.Put(hotID, `{"id":"hot","name":"flash-sale banner","stock":1000}`)
	caches := make([]impl.Cache, s.Instances)
	defer func() {
		for _, c := range caches {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	for i := range caches {
		b := env.Backend
		if i > 0 {
			var err error
			if b, err = env.Open(ctx); err != nil {
				return cell, fmt.Errorf("open instance %d: %w", i, err)
			}
			defer b.Close()
		}
		c, err := openCache(b, strategy, impl.CacheOptions{
			Keys: env.Keys, Origin: o.Client(i), TTL: s.TTL, Beta: s.Beta,
			// Generous: a rebuild slowed by a loaded machine must not pass
			// for a crashed one, or waiters would load too.
			LockTTL: stampedeLockTTL, LockWait: stampedeLockTTL,
		})
		if err != nil {
			return cell, err
		}
		caches[i] = c
	}

	tallies := make([]cacheReadTally, conc)
	stats, err := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Duration:    dur,
		Steps:       cacheSteps(),
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		begin := time.Now()
		r, err := caches[w.ID%len(caches)].Get(ctx, hotID)
		if err != nil {
			return err
		}
		w.Observe(int(r.Source), time.Since(begin))
		tallies[w.ID].add(r.Source)
		if r.Version != rec.Version || r.Value != rec.Value {
			tallies[w.ID].wrong++
		}
		if s.Think > 0 {
			return impl.Sleep(ctx, s.Think)
		}
		runtime.Gosched() // see Think
		return nil
	})
	if err != nil {
		return cell, err
	}
	stats.Fill(&cell)
	pruneSteps(&cell)

	// The origin is the database: its own log says how many loads each
	// expiry caused, and which instance made them.
	expiries := groupExpiries(o.LoadLog(), s.window())
	out := stampedeOutcome{
		strategy: strategy, instances: s.Instances, workers: conc, expiries: int64(len(expiries)),
		reads: cacheReads(tallies), failed: stats.ErrorCount(), readsPerSec: stats.Throughput(),
		latency: cacheLatencyLine(cell.Steps), originVersion: rec.Version,
	}
	for _, e := range expiries {
		out.maxLoads = max(out.maxLoads, int64(e.loads))
		out.loads += int64(e.loads)
		for _, n := range e.perInstance {
			out.maxPerInstance = max(out.maxPerInstance, int64(n))
		}
	}
	cell.Figures = cacheReadFigures(out.reads, cell.Steps)
	out.fill(cell.Figures, o.Loads())
	if len(expiries) < 2 && !stats.Interrupted && out.failed == 0 {
		// Not the strategy's doing: the machine did not get through two
		// expiries (a cell with failed reads is the runner's to judge).
		return cell, JudgementError(fmt.Errorf("the hot key was loaded for %d expiries in %s; the scenario needs at least 2 (TTL %s)", len(expiries), dur, s.TTL))
	}

	// Read the entry back through the neutral client: it must be the
	// origin's record. A failure of paybench's own leaves the cell
	// INCONCLUSIVE with the figures above.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	entry, err := env.Admin.HMGet(vctx, impl.CacheKey(env.Keys, hotID), "v", "d").Result()
	if err != nil {
		return cell, JudgementError(fmt.Errorf("read the hot entry back: %w", err))
	}
	out.entry = entry
	out.entryOK = entry[0] == nil || (fmt.Sprint(entry[0]) == strconv.FormatInt(rec.Version, 10) && fmt.Sprint(entry[1]) == rec.Value)
	cell.Invariants = out.invariants()
	cell.Summary = out.summary()
	return cell, nil
}

// stampedeOutcome is what a cache-stampede cell's verdict is made of: its
// figures, its invariants and its summary are all computed from it.
type stampedeOutcome struct {
	strategy           string
	instances, workers int
	expiries           int64
	maxLoads, loads    int64 // per expiry: the most, and all of them
	maxPerInstance     int64 // the most loads of one instance for one expiry
	reads              cacheReadTally
	failed             int64 // reads that failed
	readsPerSec        float64
	latency            string // cacheLatencyLine
	entry              []any  // the entry read back: v, d
	entryOK            bool
	originVersion      int64
}

// meanLoads is the mean number of loads per expiry.
func (o stampedeOutcome) meanLoads() float64 {
	if o.expiries == 0 {
		return 0
	}
	return float64(o.loads) / float64(o.expiries)
}

// fill adds the outcome's figures to f; originLoads is the origin's own
// count.
func (o stampedeOutcome) fill(f map[string]float64, originLoads int64) {
	f["instances"] = float64(o.instances)
	f["workers"] = float64(o.workers)
	f["origin_loads"] = float64(originLoads)
	f["expiries"] = float64(o.expiries)
	f["loads_per_expiry_max"] = float64(o.maxLoads)
	f["loads_per_expiry_mean"] = o.meanLoads()
	f["loads_per_instance_expiry_max"] = float64(o.maxPerInstance)
	f["reads_per_s"] = o.readsPerSec
	f["errors"] = float64(o.failed)
	f["wrong_reads"] = float64(o.reads.wrong)
}

// readsRight reports whether every read answered the origin's record.
// Failed reads are the runner's matter (no verdict), not part of it.
func (o stampedeOutcome) readsRight() bool { return o.reads.wrong == 0 }

// invariants judges the outcome.
func (o stampedeOutcome) invariants() []result.Invariant {
	inv := []result.Invariant{
		Check("loads per expiry <= instances", o.maxLoads <= int64(o.instances),
			"the worst of %d expiries caused %d loads from the origin; %d instances (%d workers); %d loads in all",
			o.expiries, o.maxLoads, o.instances, o.workers, o.loads),
	}
	switch o.strategy {
	case impl.CacheSingleflight, impl.CacheClientSide:
		inv = append(inv, Check("loads per instance per expiry <= 1", o.maxPerInstance <= 1,
			"the worst instance loaded %d times for one expiry", o.maxPerInstance))
	case impl.CacheLock, impl.CacheEarly:
		inv = append(inv, Check("loads per expiry <= 1", o.maxLoads <= 1,
			"the worst expiry caused %d loads across %d instances", o.maxLoads, o.instances))
	}
	return append(inv,
		Check("every read answered with the origin's record", o.readsRight(),
			"%d reads failed, %d returned another record", o.failed, o.reads.wrong),
		Check("the cached entry is the origin's record", o.entryOK,
			"entry v=%v d=%v; origin v%d", o.entryValue(0), o.entryValue(1), o.originVersion))
}

// entryValue is field i of the entry read back (nil when none was read).
func (o stampedeOutcome) entryValue(i int) any {
	if i < len(o.entry) {
		return o.entry[i]
	}
	return nil
}

// summary is the cell's line, from the same figures as its invariants.
func (o stampedeOutcome) summary() string {
	s := fmt.Sprintf("%d expiries, up to %d origin loads per expiry (mean %.1f; %d instances, %d workers); %.0f reads/s, hit ratio %.1f%%; %s",
		o.expiries, o.maxLoads, o.meanLoads(), o.instances, o.workers, o.readsPerSec, 100*o.reads.hitRatio(), o.latency)
	if !o.readsRight() {
		s += fmt.Sprintf("; %d reads failed, %d returned another record", o.failed, o.reads.wrong)
	}
	if !o.entryOK {
		s += "; the cached entry is not the origin's record"
	}
	return s
}
