package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() {
	RegisterOperation(Operation{
		Name:        "limit.allow",
		Description: "one rate-limit decision for a user (100 per second each); most are refused under load",
		Strategies:  []string{impl.LimitGCRA, impl.LimitNaive, impl.LimitFixedWindow, impl.LimitSlidingLog, impl.LimitSlidingWindow, impl.LimitRedisRate},
		Setup:       setupLimitAllow,
	})
	RegisterOperation(Operation{
		Name:        "dedupe.submit",
		Description: "submit a request to the duplicate-submission guard; the first per key passes, repeats within 10 s are refused",
		Strategies:  []string{impl.DedupeSetNX, impl.DedupeNaive},
		Setup:       setupDedupeSubmit,
	})
}

// Load parameters of limit.allow and dedupe.submit.
const (
	loadLimit       = 100
	loadLimitPeriod = time.Second
	loadDedupeTTL   = 10 * time.Second
)

// limitLoadTally is one worker's tally in a load run, on its own cache
// line.
type limitLoadTally struct {
	yes, no int64
	_       [64]byte
}

// sumLimitTallies adds up the workers' tallies.
func sumLimitTallies(ts *workerSlots[limitLoadTally]) (yes, no int64) {
	ts.each(func(t *limitLoadTally) {
		yes += t.yes
		no += t.no
	})
	return yes, no
}

func setupLimitAllow(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	lb, ok := env.Backend.(impl.LimitBackend)
	if !ok {
		return nil, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	opts := impl.LimitOptions{Keys: env.Keys, Limit: loadLimit, Period: loadLimitPeriod}.WithDefaults()
	lim, err := lb.Limiter(strategy, opts)
	if err != nil {
		return nil, err
	}
	users := make([]string, max(env.KeyCount, 1))
	for i := range users {
		users[i] = "user-" + strconv.Itoa(i)
	}
	tallies := newWorkerSlots(env.Workers, func() *limitLoadTally { return new(limitLoadTally) })
	return &Load{
		Params: librarySettings(lim),
		Op: func(ctx context.Context, w *bench.Worker) error {
			d, err := lim.Allow(ctx, users[env.Pick(w)], 1)
			if err != nil || !w.Measuring() {
				return err
			}
			t := tallies.get(w.ID)
			if d.Allowed {
				t.yes++
			} else {
				t.no++
			}
			return nil
		},
		Figures: func(ctx context.Context) (map[string]float64, error) {
			yes, no := sumLimitTallies(tallies)
			f := map[string]float64{
				"users":     float64(len(users)),
				"limit":     float64(opts.Limit),
				"period_ms": float64(opts.Period / time.Millisecond),
				"admitted":  float64(yes),
				"refused":   float64(no),
			}
			mem, err := limiterMemory(ctx, env.Admin, strategy, opts, users[0])
			if err != nil {
				return nil, err
			}
			f["memory_bytes_per_key"] = float64(mem)
			// The keys' expiries as the load left them (figures only: a
			// load cell has no invariants; the rate-limit scenario judges
			// them).
			e, err := scanLimitExpiries(ctx, env.Admin, opts)
			if err != nil {
				return nil, err
			}
			limitExpiryFigures(f, e)
			return f, nil
		},
	}, nil
}

func setupDedupeSubmit(ctx context.Context, env *LoadEnv, strategy string) (*Load, error) {
	db, ok := env.Backend.(impl.DedupeBackend)
	if !ok {
		return nil, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	guard, err := db.Deduper(strategy, impl.DedupeOptions{Keys: env.Keys, Window: loadDedupeTTL})
	if err != nil {
		return nil, err
	}
	fps := make([]string, max(env.KeyCount, 1))
	for i := range fps {
		fps[i] = impl.Fingerprint("load", strconv.Itoa(i))
	}
	tallies := newWorkerSlots(env.Workers, func() *limitLoadTally { return new(limitLoadTally) })
	return &Load{
		Op: func(ctx context.Context, w *bench.Worker) error {
			s, err := guard.Submit(ctx, fps[env.Pick(w)], "s"+strconv.FormatInt(w.Seq, 10))
			if err != nil || !w.Measuring() {
				return err
			}
			t := tallies.get(w.ID)
			if s.Accepted {
				t.yes++
			} else {
				t.no++
			}
			return nil
		},
		Figures: func(ctx context.Context) (map[string]float64, error) {
			yes, no := sumLimitTallies(tallies)
			mem, err := env.Admin.MemoryUsage(ctx, impl.DedupeKey(env.Keys, fps[0]), 0).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("MEMORY USAGE: %w", err)
			}
			return map[string]float64{
				"fingerprints":         float64(len(fps)),
				"window_ms":            float64(loadDedupeTTL / time.Millisecond),
				"accepted":             float64(yes),
				"refused":              float64(no),
				"memory_bytes_per_key": float64(mem),
			}, nil
		},
	}, nil
}

// Outcomes shared by the guard scenarios (rate-limit, duplicate-submit,
// the lock and the cache scenarios).

// addFailures counts operations of the backend under test that ran beside
// the engine (the rate-limit's steady client, the staleness writers) and
// failed, as the engine counts its own: each is one operation of the cell
// and one error of its class (classify: the backend's), and the first
// message of each class is kept as its sample. The runner then sees them:
// a cell whose operations failed is not judged on its invariants alone.
func addFailures(c *result.Cell, classify func(error) string, errs []error) {
	for _, err := range errs {
		class := classify(err)
		if class == "" {
			class = impl.ClassOther
		}
		if c.Errors == nil {
			c.Errors = map[string]int64{}
		}
		if c.ErrorSamples == nil {
			c.ErrorSamples = map[string]string{}
		}
		c.Errors[class]++
		c.Ops++
		if _, ok := c.ErrorSamples[class]; !ok {
			c.ErrorSamples[class] = bench.SampleText(err)
		}
	}
}

// unknownOutcome reports whether a failure of class left its outcome
// unknown — the command may have applied (impl.MayHaveApplied) — and is a
// failure to the runner, so that settling it against the server means
// something. A cancellation is neither: the runner counts the caller's own
// cancellation as a refusal, so it must never count in Cell.Settled.
func unknownOutcome(class string) bool {
	return impl.MayHaveApplied(class) && class != impl.ClassCanceled
}

// lostRepliesClause is the summary's account of the replies a cell lost
// and settled against the server: "; N replies lost, M had <what>".
func lostRepliesClause(lost, happened int64, what string) string {
	if lost == 0 {
		return ""
	}
	return fmt.Sprintf("; %d replies lost, %d had %s", lost, happened, what)
}
