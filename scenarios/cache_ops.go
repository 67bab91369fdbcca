package scenarios

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/origin"
	"github.com/paybench/paybench/reports/result"
)

func init() {
	RegisterOperation(Operation{
		Name:        "cache.get",
		Description: "read a record through the cache (cache-aside over an in-process origin with a 5ms load); reports the hit ratio",
		Strategies:  []string{impl.CacheSingleflight, impl.CacheNaive, impl.CacheLock, impl.CacheEarly, impl.CacheClientSide},
		Setup:       setupCacheGet,
	})
	RegisterOperation(Operation{
		Name:        "cache.update",
		Description: "update a record: write the origin, then invalidate its cache entry (naive DEL, or versioned: raise the version floor and DEL)",
		Strategies:  []string{impl.CacheWriteVersioned, impl.CacheWriteNaive},
		Setup:       setupCacheUpdate,
	})
}

// Load parameters of the cache operations: entries live a second, and a
// load from the origin takes 5 ms, a quick database query.
const (
	loadCacheTTL         = time.Second
	loadCacheLoadLatency = 5 * time.Millisecond
)

// cacheSources lists every impl.CacheSource in value order: the step
// index a read is observed under is its source.
var cacheSources = []impl.CacheSource{impl.FromRedis, impl.FromLocal, impl.FromStale, impl.FromShared, impl.FromOrigin}

// cacheSteps returns the step names of a cache cell, indexed by source.
func cacheSteps() []string {
	names := make([]string, len(cacheSources))
	for i, s := range cacheSources {
		names[i] = s.String()
	}
	return names
}

// cacheReadTally counts one worker's reads by source, and the reads a
// scenario found wrong, on its own cache line.
type cacheReadTally struct {
	bySource [5]int64
	wrong    int64
	_        [64]byte
}

func (t *cacheReadTally) add(s impl.CacheSource) {
	if int(s) < len(t.bySource) {
		t.bySource[s]++
	}
}

// cacheReads sums tallies.
func cacheReads(ts []cacheReadTally) (sum cacheReadTally) {
	for _, t := range ts {
		for i, n := range t.bySource {
			sum.bySource[i] += n
		}
		sum.wrong += t.wrong
	}
	return sum
}

// total returns the number of reads answered.
func (t cacheReadTally) total() int64 {
	var n int64
	for _, v := range t.bySource {
		n += v
	}
	return n
}

// hits counts reads served by an entry they found (Redis, local, stale).
func (t cacheReadTally) hits() int64 {
	var n int64
	for _, s := range cacheSources {
		if s.Hit() {
			n += t.bySource[s]
		}
	}
	return n
}

// hitRatio is hits / reads (0 without reads).
func (t cacheReadTally) hitRatio() float64 {
	if t.total() == 0 {
		return 0
	}
	return float64(t.hits()) / float64(t.total())
}

// cacheCountFigure names the figure counting the reads of each source.
var cacheCountFigure = map[impl.CacheSource]string{
	impl.FromRedis:  "hits",
	impl.FromLocal:  "local_hits",
	impl.FromStale:  "stale_hits",
	impl.FromShared: "shared_misses",
	impl.FromOrigin: "misses",
}

// cacheReadFigures returns the read figures every cache cell reports:
// reads, hit ratio, reads by source and, per source, the latency p50, p99
// and max in microseconds (from the cell's steps).
func cacheReadFigures(sum cacheReadTally, steps map[string]result.Latency) map[string]float64 {
	f := map[string]float64{
		"reads":     float64(sum.total()),
		"hit_ratio": sum.hitRatio(),
	}
	for _, s := range cacheSources {
		name := strings.ReplaceAll(s.String(), "-", "_")
		f[cacheCountFigure[s]] = float64(sum.bySource[s])
		if l, ok := steps[s.String()]; ok && l.Corrected.Count > 0 {
			f[name+"_p50_us"] = float64(l.Corrected.P50)
			f[name+"_p99_us"] = float64(l.Corrected.P99)
			f[name+"_max_us"] = float64(l.Corrected.Max)
		}
	}
	return f
}

// pruneSteps drops the steps no read was observed under, so a cell lists
// only the sources it had.
func pruneSteps(c *result.Cell) {
	for name, l := range c.Steps {
		if l.Corrected.Count == 0 {
			delete(c.Steps, name)
		}
	}
	if len(c.Steps) == 0 {
		c.Steps = nil
	}
}

// cacheLatencyLine renders the per-source latency of a cell for its
// summary: "hit p50 95µs p99 1.1ms · miss p50 21ms p99 23ms".
func cacheLatencyLine(steps map[string]result.Latency) string {
	var parts []string
	for _, s := range cacheSources {
		l, ok := steps[s.String()]
		if !ok || l.Corrected.Count == 0 {
			continue
		}
		name := s.String()
		if s == impl.FromRedis {
			name = "network hit"
		}
		parts = append(parts, fmt.Sprintf("%s p50 %s p99 %s", name, fmtMicros(l.Corrected.P50), fmtMicros(l.Corrected.P99)))
	}
	return strings.Join(parts, " · ")
}

// fmtMicros renders microseconds with a readable unit.
func fmtMicros(us int64) string {
	d := time.Duration(us) * time.Microsecond
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(us, 10) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(us)/1e3, 'f', 1, 64) + "ms"
	default:
		return strconv.FormatFloat(float64(us)/1e6, 'f', 2, 64) + "s"
	}
}

// cacheLoadTally is one worker's tally in a cache load run: reads by
// source and the hit and miss latency, on its own cache line.
type cacheLoadTally struct {
	reads      cacheReadTally
	hit, miss  *hdrhistogram.Histogram
	local      *hdrhistogram.Histogram
	writes     int64
	versionMax int64
	_          [64]byte
}

// cachePrebuiltTallies bounds the cache tallies built before a load run:
// each holds three histograms (about 400 KiB), so an open loop allowed
// thousands of workers builds the rest when they first run.
const cachePrebuiltTallies = 256

// newCacheLoadTallies builds the tallies of a cache load run.
func newCacheLoadTallies(env *LoadEnv) *workerSlots[cacheLoadTally] {
	return newWorkerSlots(min(env.Workers, cachePrebuiltTallies), func() *cacheLoadTally {
		return &cacheLoadTally{hit: bench.NewHistogram(), miss: bench.NewHistogram(), local: bench.NewHistogram()}
	})
}

// cacheLoadRecords seeds env.KeyCount records in a fresh origin.
func cacheLoadRecords(env *LoadEnv) (*origin.Origin, []string) {
	o := origin.New(origin.Options{LoadLatency: loadCacheLoadLatency})
	ids := make([]string, max(env.KeyCount, 1))
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
		o.Put(ids[i], `{"id":`+strconv.Itoa(i)+`,"tier":"gold"}`)
	}
	return o, ids
}

// openCache returns the backend's cache family, or an error wrapping
// impl.ErrNotSupported.
func openCache(b impl.Backend, strategy string, opts impl.CacheOptions) (impl.Cache, error) {
	cb, ok := b.(impl.CacheBackend)
	if !ok {
		return nil, fmt.Errorf("%s: cache family: %w", b.Name(), impl.ErrNotSupported)
	}
	return cb.Cache(strategy, opts)
}

// setupCacheGet prepares cache.get. Load.Close closes the cache (and the
// client-side strategy's own caching client).
func setupCacheGet(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	o, ids := cacheLoadRecords(env)
	cache, err := openCache(env.Backend, strategy, impl.CacheOptions{Keys: env.Keys, Origin: o, TTL: loadCacheTTL})
	if err != nil {
		return nil, err
	}
	tallies := newCacheLoadTallies(env)
	return &Load{
		Close: cache.Close,
		Op: func(ctx context.Context, w *bench.Worker) error {
			t := tallies.get(w.ID)
			begin := time.Now()
			r, err := cache.Get(ctx, ids[env.Pick(w)])
			if err != nil || !w.Measuring() {
				return err
			}
			d := time.Since(begin).Microseconds()
			t.reads.add(r.Source)
			switch {
			case r.Source == impl.FromLocal:
				_ = t.local.RecordValue(max(d, 1))
			case r.Source.Hit():
				_ = t.hit.RecordValue(max(d, 1))
			default:
				_ = t.miss.RecordValue(max(d, 1))
			}
			return nil
		},
		Figures: func(context.Context) (map[string]float64, error) {
			var ts []cacheReadTally
			hit, miss, local := bench.NewHistogram(), bench.NewHistogram(), bench.NewHistogram()
			tallies.each(func(t *cacheLoadTally) {
				ts = append(ts, t.reads)
				hit.Merge(t.hit)
				miss.Merge(t.miss)
				local.Merge(t.local)
			})
			sum := cacheReads(ts)
			f := cacheReadFigures(sum, nil)
			f["records"] = float64(len(ids))
			f["ttl_ms"] = float64(loadCacheTTL.Milliseconds())
			f["origin_load_latency_ms"] = float64(loadCacheLoadLatency.Milliseconds())
			f["origin_loads"] = float64(o.Loads())
			for name, h := range map[string]*hdrhistogram.Histogram{"hit": hit, "miss": miss, "local_hit": local} {
				if h.TotalCount() > 0 {
					f[name+"_p50_us"] = float64(h.ValueAtQuantile(50))
					f[name+"_p99_us"] = float64(h.ValueAtQuantile(99))
					f[name+"_max_us"] = float64(h.Max())
				}
			}
			return f, nil
		},
	}, nil
}

// setupCacheUpdate prepares cache.update: the strategy is the write mode.
// Every record is cached first, so the first invalidations have an entry to
// remove.
func setupCacheUpdate(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	o, ids := cacheLoadRecords(env)
	cache, err := openCache(env.Backend, impl.CacheNaive, impl.CacheOptions{Keys: env.Keys, Origin: o, TTL: loadCacheTTL, Write: strategy})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := cache.Get(ctx, id); err != nil {
			return nil, fmt.Errorf("warm the cache: %w", err)
		}
	}
	loadsBefore := o.Loads()
	tallies := newCacheLoadTallies(env)
	return &Load{
		Close: cache.Close,
		Op: func(ctx context.Context, w *bench.Worker) error {
			t := tallies.get(w.ID)
			rec, err := cache.Update(ctx, ids[env.Pick(w)], "w"+strconv.FormatInt(w.Seq, 10))
			if err != nil || !w.Measuring() {
				return err
			}
			t.writes++
			t.versionMax = max(t.versionMax, rec.Version)
			return nil
		},
		Figures: func(context.Context) (map[string]float64, error) {
			var writes, versionMax int64
			tallies.each(func(t *cacheLoadTally) {
				writes += t.writes
				versionMax = max(versionMax, t.versionMax)
			})
			return map[string]float64{
				"records":      float64(len(ids)),
				"writes":       float64(writes),
				"version_max":  float64(versionMax),
				"origin_loads": float64(o.Loads() - loadsBefore),
			}, nil
		},
	}, nil
}
