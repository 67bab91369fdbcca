package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/origin"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newCacheStaleness() }) }

// CacheStaleness is the classic cache-aside race: a reader misses and
// loads a record (slowly), a writer updates the record and invalidates the
// entry, and the reader's fill lands after the invalidation and puts the
// old value back, to be served until the entry expires. Writers update
// records in bursts of two writes a fraction of a load apart while readers
// re-populate on misses; a sampler reads the entries back through the
// neutral client and measures, against the origin's versions, how long an
// entry older than the latest write survived.
type CacheStaleness struct {
	// Records is the number of records read and written.
	Records int
	// Writers is the number of writers; each owns Records/Writers records
	// and updates them in turn.
	Writers int
	// TTL is the entries' TTL.
	TTL time.Duration
	// LoadLatency is how long one load from the origin takes.
	LoadLatency time.Duration
	// BurstGap separates the two writes of a burst (0: half the load
	// latency, so the second write lands while the load the first one
	// caused is in flight).
	BurstGap time.Duration
	// Pause is the longest pause of a writer between bursts (0: half the
	// TTL); each pause is drawn between Pause/2 and Pause.
	Pause time.Duration
	// Bound is the staleness tolerated: an entry (or a read) older than the
	// latest write by more than Bound breaks the invariant (0: half the
	// TTL). A correct invalidation leaves a round trip of staleness; the
	// race leaves a whole TTL.
	Bound time.Duration
	// Read is the read strategy of the naive and versioned cells.
	Read string
	// Think is each reader's pause after a read, as a request handler
	// does other work. At 0 a reader still yields the processor after
	// each read (runtime.Gosched): readers served from a client-side cache
	// in a microsecond never block, and would otherwise starve the
	// goroutine that processes the server's invalidations, delaying them
	// by up to a hundred milliseconds on a small machine.
	Think time.Duration
	// SampleEvery is the sampler's period.
	SampleEvery time.Duration
	// Duration is the default length of a cell.
	Duration time.Duration
}

func newCacheStaleness() *CacheStaleness {
	return &CacheStaleness{
		Records: 8, Writers: 2, TTL: 400 * time.Millisecond, LoadLatency: 20 * time.Millisecond,
		Read: impl.CacheSingleflight, SampleEvery: time.Millisecond, Duration: 2 * time.Second,
	}
}

// Name implements Scenario.
func (s *CacheStaleness) Name() string { return "cache-staleness" }

// Description implements Scenario.
func (s *CacheStaleness) Description() string {
	return "writers update while readers re-populate the cache; a slow reader puts the old value back after the seed's delete"
}

// Strategies implements Scenario. The strategy names the write mode; the
// client-side cell also reads through the client-side cache.
func (s *CacheStaleness) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.CacheWriteNaive, Expect: result.Break, Note: "update the origin, then DEL: a slow reader's fill puts the old value back"},
		{Name: impl.CacheWriteVersioned, Expect: result.Hold, Note: "a version floor raised by each write; fills older than it or than the entry are refused (one script)"},
		{Name: impl.CacheClientSide, Expect: result.Hold, Note: "versioned writes, read through rueidis's client-side cache: staleness after invalidation"},
	}
}

// Flags implements Scenario.
func (s *CacheStaleness) Flags(fs *pflag.FlagSet) {
	fs.IntVar(&s.Records, "records", s.Records, "records read and written")
	fs.IntVar(&s.Writers, "writers", s.Writers, "writers, each updating its share of the records in bursts of two writes")
	fs.DurationVar(&s.TTL, "ttl", s.TTL, "the entries' TTL")
	fs.DurationVar(&s.LoadLatency, "load-latency", s.LoadLatency, "how long one load from the origin (the database) takes")
	fs.DurationVar(&s.BurstGap, "burst-gap", s.BurstGap, "time between the two writes of a burst (0: half the load latency)")
	fs.DurationVar(&s.Pause, "pause", s.Pause, "a writer's longest pause between bursts (0: half the TTL)")
	fs.DurationVar(&s.Bound, "stale-bound", s.Bound, "staleness tolerated after a write (0: half the TTL)")
	fs.DurationVar(&s.Think, "think", s.Think, "each reader's pause after a read, other work of a request (0: yield only)")
	fs.StringVar(&s.Read, "read", s.Read, "read strategy of the naive and versioned cells (naive, singleflight, lock, early)")
}

// Validate implements Scenario.
func (s *CacheStaleness) Validate() error {
	switch {
	case s.Records < 1 || s.Records > 100_000:
		return fmt.Errorf("--records must be 1..100000, got %d", s.Records)
	case s.Writers < 1 || s.Writers > s.Records:
		return fmt.Errorf("--writers must be 1..records (%d), got %d", s.Records, s.Writers)
	case s.TTL < 10*time.Millisecond:
		return fmt.Errorf("--ttl must be at least 10ms, got %s", s.TTL)
	case s.LoadLatency < 0 || s.BurstGap < 0 || s.Pause < 0 || s.Bound < 0 || s.Think < 0:
		return errors.New("--load-latency, --burst-gap, --pause, --stale-bound and --think must be >= 0")
	case s.SampleEvery <= 0:
		return fmt.Errorf("the sample period must be > 0, got %s", s.SampleEvery)
	}
	switch s.Read {
	case impl.CacheNaive, impl.CacheSingleflight, impl.CacheLock, impl.CacheEarly:
	default:
		return fmt.Errorf("--read must be naive, singleflight, lock or early, got %q", s.Read)
	}
	return nil
}

func (s *CacheStaleness) burstGap() time.Duration {
	if s.BurstGap > 0 {
		return s.BurstGap
	}
	return s.LoadLatency / 2
}

func (s *CacheStaleness) pause() time.Duration {
	if s.Pause > 0 {
		return s.Pause
	}
	return s.TTL / 2
}

func (s *CacheStaleness) bound() time.Duration {
	if s.Bound > 0 {
		return s.Bound
	}
	return s.TTL / 2
}

// Params implements Scenario.
func (s *CacheStaleness) Params() map[string]string {
	return map[string]string{
		"records":      strconv.Itoa(s.Records),
		"writers":      strconv.Itoa(s.Writers),
		"ttl":          s.TTL.String(),
		"load_latency": s.LoadLatency.String(),
		"burst_gap":    s.burstGap().String(),
		"pause":        s.pause().String(),
		"stale_bound":  s.bound().String(),
		"read":         s.Read,
		"think":        s.Think.String(),
	}
}

// staleTally is one reader's staleness tally, on its own cache line. Only
// reads served from a cache entry count as stale: a read that joined a
// load begun before the write got what the database answered then, which
// is the origin's consistency, not the cache's (counted apart, as shared).
type staleTally struct {
	reads     cacheReadTally
	shared    int64         // stale reads answered by a load begun before the write
	stale     int64         // cache hits older than a write invalidated before they began
	overBound int64         // of which older than the bound
	maxAge    time.Duration // the oldest such read's age, since the invalidation
	maxWrite  time.Duration // the oldest read's age since the origin write
	maxLocal  time.Duration // the oldest client-side hit's age, since the invalidation
	_         [64]byte
}

// staleSample is what the sampler saw.
type staleSample struct {
	samples   int64
	stale     int64 // observations of an entry older than an invalidated write
	maxAge    time.Duration
	maxWrite  time.Duration // the oldest entry's age since the origin write
	maxID     string
	maxVer    int64
	overBound map[string]bool // "id@version" of entries that outlived the bound
	err       error
}

// writeLog records when each write's invalidation finished (Update
// returned): a value is stale from the moment the write that replaced it
// was both in the origin and invalidated in the cache. Before that, the
// cache-aside order (origin first, cache second) makes it stale by design.
type writeLog struct {
	mu   sync.RWMutex
	done map[string]map[int64]time.Time // id -> version -> invalidated at
}

func (l *writeLog) add(id string, version int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done[id] == nil {
		l.done[id] = map[int64]time.Time{}
	}
	l.done[id][version] = at
}

// staleFor returns how long before t a value of id at version was
// superseded by an invalidated write (ok false when it was not, by t).
// One writer owns each record, so version+1 is invalidated first.
func (l *writeLog) staleFor(id string, version int64, t time.Time) (time.Duration, bool) {
	l.mu.RLock()
	at, ok := l.done[id][version+1]
	l.mu.RUnlock()
	if !ok || !at.Before(t) {
		return 0, false
	}
	return t.Sub(at), true
}

// Run implements Scenario.
func (s *CacheStaleness) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	dur := env.Common.Duration
	if dur <= 0 {
		dur = s.Duration
	}
	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}
	if env.Open == nil {
		return cell, errors.New("cache-staleness needs Env.Open to connect its writers' instance")
	}
	readStrategy, write := s.Read, strategy
	if strategy == impl.CacheClientSide {
		readStrategy, write = impl.CacheClientSide, impl.CacheWriteVersioned
	}
	bound := s.bound()

	o := origin.New(origin.Options{LoadLatency: s.LoadLatency})
	ids := make([]string, s.Records)
	keys := make([]string, s.Records)
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
		keys[i] = impl.CacheKey(env.Keys, ids[i])
		o.Put(ids[i], "balance=0")
	}
	opts := impl.CacheOptions{Keys: env.Keys, Origin: o, TTL: s.TTL, Write: write}
	readers, err := openCache(env.Backend, readStrategy, opts)
	if err != nil {
		return cell, err
	}
	defer readers.Close()
	// The writers are another application instance, on their own
	// connections: with client-side caching their invalidations reach the
	// readers through the server.
	wb, err := env.Open(ctx)
	if err != nil {
		return cell, fmt.Errorf("open the writers' instance: %w", err)
	}
	defer wb.Close()
	writers, err := openCache(wb, impl.CacheNaive, opts)
	if err != nil {
		return cell, err
	}
	defer writers.Close()

	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	var bg sync.WaitGroup
	log := &writeLog{done: map[string]map[int64]time.Time{}}
	sampled := &staleSample{overBound: map[string]bool{}}
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.sample(bgCtx, env.Admin, o, log, ids, keys, bound, sampled)
	}()
	writes := make([]int64, s.Writers)
	writeErrs := make([][]error, s.Writers)
	for wi := range s.Writers {
		bg.Add(1)
		go func() {
			defer bg.Done()
			writes[wi], writeErrs[wi] = s.write(bgCtx, writers, log, ids, wi, env.Common.Seed)
		}()
	}

	tallies := make([]staleTally, conc)
	stats, runErr := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Duration:    dur,
		Steps:       cacheSteps(),
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		id := ids[w.Rand.IntN(len(ids))]
		begin := time.Now()
		r, err := readers.Get(ctx, id)
		if err != nil {
			return err
		}
		w.Observe(int(r.Source), time.Since(begin))
		t := &tallies[w.ID]
		t.reads.add(r.Source)
		// Older than a write invalidated before this read began?
		if age, ok := log.staleFor(id, r.Version, begin); ok {
			if !r.Source.Hit() {
				t.shared++
				return s.think(ctx)
			}
			t.stale++
			t.maxAge = max(t.maxAge, age)
			if r.Source == impl.FromLocal {
				t.maxLocal = max(t.maxLocal, age)
			}
			if age > bound {
				t.overBound++
			}
			if at, ok := o.StaleSince(id, r.Version); ok {
				t.maxWrite = max(t.maxWrite, begin.Sub(at))
			}
		}
		return s.think(ctx)
	})
	stopBg()
	bg.Wait()
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)
	pruneSteps(&cell)
	// The writers are the backend under test too (another instance of
	// it): their failed updates are failed operations of the cell.
	var writeFailed []error
	var totalWrites int64
	for i, n := range writes {
		totalWrites += n
		writeFailed = append(writeFailed, writeErrs[i]...)
	}
	addFailures(&cell, wb.Classify, writeFailed)

	var sum staleTally
	var readsByWorker []cacheReadTally
	for _, t := range tallies {
		readsByWorker = append(readsByWorker, t.reads)
		sum.stale += t.stale
		sum.shared += t.shared
		sum.overBound += t.overBound
		sum.maxAge = max(sum.maxAge, t.maxAge)
		sum.maxWrite = max(sum.maxWrite, t.maxWrite)
		sum.maxLocal = max(sum.maxLocal, t.maxLocal)
	}
	out := stalenessOutcome{
		clientSide: strategy == impl.CacheClientSide, records: s.Records, bound: bound,
		reads: cacheReads(readsByWorker), hits: sum, sampled: sampled, writes: totalWrites,
		readsFailed: stats.ErrorCount(), writesFailed: int64(len(writeFailed)),
		readsPerSec: stats.Throughput(), originLoads: o.Loads(), latency: cacheLatencyLine(cell.Steps),
	}
	if len(writeFailed) > 0 {
		out.writeErr = writeFailed[0].Error()
	}
	cell.Figures = cacheReadFigures(out.reads, cell.Steps)
	out.fill(cell.Figures)

	// From here on paybench's own reads judge: a failure of theirs is not
	// the cache's, and leaves the cell INCONCLUSIVE with the figures above.
	if sampled.err != nil {
		return cell, JudgementError(fmt.Errorf("staleness sampler: %w", sampled.err))
	}
	// The entries at the end, read back through the neutral client: each
	// must be absent or hold the origin's latest version.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	staleAtEnd, err := s.staleEntries(vctx, env.Admin, o, ids, keys)
	if err != nil {
		return cell, JudgementError(err)
	}
	out.staleAtEnd = int64(staleAtEnd)
	out.fill(cell.Figures)
	cell.Invariants = out.invariants()
	cell.Summary = out.summary()
	return cell, nil
}

// stalenessOutcome is what a cache-staleness cell's verdict is made of:
// its figures, its invariants and its summary are all computed from it.
type stalenessOutcome struct {
	clientSide                bool
	records                   int
	bound                     time.Duration
	reads                     cacheReadTally
	hits                      staleTally   // the readers' staleness, summed
	sampled                   *staleSample // the sampler's
	writes                    int64
	readsFailed, writesFailed int64
	writeErr                  string // the first failed write's error
	readsPerSec               float64
	originLoads               int64
	latency                   string // cacheLatencyLine
	staleAtEnd                int64
}

// fill adds the outcome's figures to f.
func (o stalenessOutcome) fill(f map[string]float64) {
	f["records"] = float64(o.records)
	f["writes"] = float64(o.writes)
	f["origin_loads"] = float64(o.originLoads)
	f["reads_per_s"] = o.readsPerSec
	f["stale_bound_ms"] = durMs(o.bound)
	f["stale_entry_max_ms"] = durMs(o.sampled.maxAge)
	f["stale_entry_since_write_max_ms"] = durMs(o.sampled.maxWrite)
	f["stale_entry_observations"] = float64(o.sampled.stale)
	f["stale_entries_over_bound"] = float64(len(o.sampled.overBound))
	f["stale_entries_at_end"] = float64(o.staleAtEnd)
	f["samples"] = float64(o.sampled.samples)
	f["stale_reads"] = float64(o.hits.stale)
	f["stale_reads_from_loads"] = float64(o.hits.shared)
	f["stale_reads_over_bound"] = float64(o.hits.overBound)
	f["stale_read_max_ms"] = durMs(o.hits.maxAge)
	f["stale_read_since_write_max_ms"] = durMs(o.hits.maxWrite)
	if o.clientSide {
		// Staleness after invalidation: the oldest value a client-side hit
		// served after the server had the newer write's invalidation.
		f["stale_local_hit_max_ms"] = durMs(o.hits.maxLocal)
	}
	f["errors"] = float64(o.readsFailed + o.writesFailed)
	f["writes_failed"] = float64(o.writesFailed)
}

// invariants judges the outcome.
// Failed reads and writes are no invariant: the runner sees them in the
// cell's errors and withholds a verdict for them.
func (o stalenessOutcome) invariants() []result.Invariant {
	return []result.Invariant{
		Check("no stale entry outlived the bound", o.sampled.maxAge <= o.bound,
			"the entry of %s at version %d was still in Redis %s after a newer write was invalidated (bound %s); %d entries outlived the bound; %d samples",
			o.sampled.maxID, o.sampled.maxVer, o.sampled.maxAge.Round(time.Millisecond), o.bound, len(o.sampled.overBound), o.sampled.samples),
		Check("no cache hit served a value stale beyond the bound", o.hits.maxAge <= o.bound,
			"%d of %d reads were hits on a version older than a write invalidated before they began; the oldest %s after; %d beyond the bound %s (%d more got an old version from a load begun before the write)",
			o.hits.stale, o.reads.total(), o.hits.maxAge.Round(time.Millisecond), o.hits.overBound, o.bound, o.hits.shared),
		Check("no entry older than the origin at the end", o.staleAtEnd == 0,
			"%d of %d entries hold a version older than the origin's", o.staleAtEnd, o.records),
	}
}

// summary is the cell's line, from the same figures as its invariants.
func (o stalenessOutcome) summary() string {
	s := fmt.Sprintf("old values served up to %s (Redis) and %s (hits) after a newer write's invalidation (bound %s); %d writes, %d entries outlived the bound; %.0f reads/s, hit ratio %.1f%%, %d origin loads; %s",
		o.sampled.maxAge.Round(time.Millisecond), o.hits.maxAge.Round(time.Millisecond), o.bound, o.writes, len(o.sampled.overBound),
		o.readsPerSec, 100*o.reads.hitRatio(), o.originLoads, o.latency)
	if o.clientSide {
		s += fmt.Sprintf("; client-side hits served old values up to %s after the invalidation", o.hits.maxLocal.Round(time.Microsecond))
	}
	if o.staleAtEnd > 0 {
		s += fmt.Sprintf("; %d of %d entries older than the origin at the end", o.staleAtEnd, o.records)
	}
	if o.readsFailed > 0 || o.writesFailed > 0 {
		s += fmt.Sprintf("; %d reads and %d writes failed", o.readsFailed, o.writesFailed)
	}
	return s
}

// think pauses a reader after a read (see Think).
func (s *CacheStaleness) think(ctx context.Context) error {
	if s.Think > 0 {
		return impl.Sleep(ctx, s.Think)
	}
	runtime.Gosched()
	return nil
}

// write runs writer wi until ctx ends: it updates its records in turn, in
// bursts of two writes BurstGap apart, pausing between bursts. An update
// that has begun runs to its end (origin and invalidation) even when ctx
// ends meanwhile, so no write is left half done. An update that fails is
// noted and the writer goes on. It returns the number of writes that
// succeeded and the errors of those that failed.
func (s *CacheStaleness) write(ctx context.Context, cache impl.Cache, log *writeLog, ids []string, wi int, seed uint64) (int64, []error) {
	rng := rand.New(rand.NewPCG(seed, uint64(1<<32+wi)))
	var mine []string
	for i := wi; i < len(ids); i += s.Writers {
		mine = append(mine, ids[i])
	}
	update := func(id string) error {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		rec, err := cache.Update(uctx, id, "balance="+strconv.FormatInt(rng.Int64N(1_000_000), 10))
		if err != nil {
			return err
		}
		log.add(id, rec.Version, time.Now())
		return nil
	}
	var n int64
	var failed []error
	for i := 0; ; i++ {
		id := mine[i%len(mine)]
		for b := range 2 {
			if b > 0 {
				if err := impl.Sleep(ctx, s.burstGap()); err != nil {
					return n, failed
				}
			}
			if err := update(id); err != nil {
				failed = append(failed, err)
				continue
			}
			n++
		}
		p := s.pause()
		if err := impl.Sleep(ctx, p/2+time.Duration(rng.Int64N(int64(p/2)+1))); err != nil {
			return n, failed
		}
	}
}

// sample reads every entry's version every SampleEvery until ctx ends and
// records how long after a newer write's invalidation an entry was still
// there.
func (s *CacheStaleness) sample(ctx context.Context, admin redis.UniversalClient, o *origin.Origin, log *writeLog, ids, keys []string, bound time.Duration, out *staleSample) {
	t := time.NewTicker(s.SampleEvery)
	defer t.Stop()
	for {
		begin := time.Now()
		cmds, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.HMGet(ctx, k, "v")
			}
			return nil
		})
		if err != nil {
			if ctx.Err() == nil {
				out.err = err
			}
			return
		}
		out.samples++
		for i, c := range cmds {
			vals := c.(*redis.SliceCmd).Val()
			if vals[0] == nil {
				continue // no entry: nothing served
			}
			v, err := strconv.ParseInt(fmt.Sprint(vals[0]), 10, 64)
			if err != nil {
				out.err = fmt.Errorf("entry %s: version %v: %w", keys[i], vals[0], err)
				return
			}
			age, stale := log.staleFor(ids[i], v, begin)
			if !stale {
				continue
			}
			if at, ok := o.StaleSince(ids[i], v); ok {
				out.maxWrite = max(out.maxWrite, begin.Sub(at))
			}
			out.stale++
			if age > out.maxAge {
				out.maxAge, out.maxID, out.maxVer = age, ids[i], v
			}
			if age > bound {
				out.overBound[ids[i]+"@"+strconv.FormatInt(v, 10)] = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// staleEntries counts the entries holding a value older than the origin.
func (s *CacheStaleness) staleEntries(ctx context.Context, admin redis.UniversalClient, o *origin.Origin, ids, keys []string) (int, error) {
	cmds, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.HMGet(ctx, k, "v")
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the entries back: %w", err)
	}
	n := 0
	for i, c := range cmds {
		vals := c.(*redis.SliceCmd).Val()
		if vals[0] == nil {
			continue
		}
		v, err := strconv.ParseInt(fmt.Sprint(vals[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("entry %s: version %v: %w", keys[i], vals[0], err)
		}
		if v < o.Version(ids[i]) {
			n++
		}
	}
	return n, nil
}

// durMs returns d in milliseconds.
func durMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
