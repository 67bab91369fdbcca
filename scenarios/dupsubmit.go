package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newDupSubmit() }) }

// DupSubmit submits every request K times at once, as a double-clicked pay
// button or a client retrying on a time-out does. A submission the guard
// accepts is processed: its id goes on the request's server-side processed
// list, and the verdict reads those lists back.
//
// One measured operation is one request: its K copies sent at once, each
// one Deduper.Submit through the backend under test, and nothing else.
// Processing an accepted submission is the harness's stand-in for the
// payment's effect, not the guard's work: the worker notes the accepted id
// in memory, and the ids are pushed on the processed lists after the run
// with the admin client, in pipelines (they used to be pushed one by one
// inside the timed operation). The lists hold exactly what they held
// before, the ids the guard accepted, and the guard's own key is still read
// back against them.
type DupSubmit struct {
	Requests int
	Copies   int
	Window   time.Duration
}

func newDupSubmit() *DupSubmit {
	return &DupSubmit{Requests: 1000, Copies: 5, Window: 10 * time.Second}
}

// Name implements Scenario.
func (d *DupSubmit) Name() string { return "duplicate-submit" }

// Description implements Scenario.
func (d *DupSubmit) Description() string {
	return "each request submitted K times at once; the seed's prevent_brush only writes a marker, so every copy passes"
}

// Strategies implements Scenario.
func (d *DupSubmit) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.DedupeNaive, Expect: result.Break, Note: "the seed's prevent_brush: SETEX a marker, never check one"},
		{Name: impl.DedupeSetNX, Expect: result.Hold, Note: "SET fingerprint id NX PX window GET: the first passes, repeats get its id"},
	}
}

// Flags implements Scenario.
func (d *DupSubmit) Flags(fs *pflag.FlagSet) {
	fs.IntVar(&d.Requests, "requests", d.Requests, "distinct requests (--duration, when set, runs for that long instead)")
	fs.IntVar(&d.Copies, "copies", d.Copies, "submissions of each request, sent at once")
	fs.DurationVar(&d.Window, "window", d.Window, "how long the guard remembers a fingerprint")
}

// Validate implements Scenario.
func (d *DupSubmit) Validate() error {
	switch {
	case d.Requests <= 0 || d.Requests > 1_000_000:
		return fmt.Errorf("--requests must be 1..1000000, got %d", d.Requests)
	case d.Copies < 2 || d.Copies > 1000:
		return fmt.Errorf("--copies must be 2..1000, got %d", d.Copies)
	case d.Window < time.Second || d.Window%time.Millisecond != 0:
		return fmt.Errorf("--window must be at least 1s, in whole milliseconds, got %s", d.Window)
	}
	return nil
}

// Params implements Scenario.
func (d *DupSubmit) Params() map[string]string {
	return map[string]string{
		"requests": strconv.Itoa(d.Requests),
		"copies":   strconv.Itoa(d.Copies),
		"window":   d.Window.String(),
	}
}

// dupSubmitRecord is what the clients saw of one request.
type dupSubmitRecord struct {
	fp        string
	accepted  []string // ids of the copies the guard accepted, to process
	originals []string // OriginalID told to each refused copy
}

// dupSubmitWriteChunk is how many requests' processed ids one pipeline
// pushes.
const dupSubmitWriteChunk = 500

// dupSubmitWorker is one worker's records, on its own cache line.
type dupSubmitWorker struct {
	records []dupSubmitRecord
	_       [64]byte
}

// Run implements Scenario.
func (d *DupSubmit) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	db, ok := env.Backend.(impl.DedupeBackend)
	if !ok {
		return cell, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	guard, err := db.Deduper(strategy, impl.DedupeOptions{Keys: env.Keys, Window: d.Window})
	if err != nil {
		return cell, err
	}
	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}
	cfg := bench.Config{Concurrency: conc, Requests: int64(d.Requests), Seed: env.Common.Seed, Steps: []string{"submit"}}
	if env.Common.Duration > 0 {
		cfg.Requests, cfg.Duration = 0, env.Common.Duration
	}
	processedKey := func(fp string) string { return env.Keys.Tagged("dupsubmit-processed", fp) }

	workers := make([]dupSubmitWorker, conc)
	copies := d.Copies
	stats, runErr := env.Drive(ctx, cfg, func(ctx context.Context, w *bench.Worker) error {
		req := "r" + strconv.FormatInt(w.Seq, 10)
		// The request's identity: who pays what for which order; the same
		// for every copy, whichever submission carries it.
		fp := impl.Fingerprint("user-"+strconv.FormatInt(w.Seq%97, 10), "order-"+req, "amount-"+strconv.FormatInt(100+w.Seq%900, 10))
		subs := make([]impl.Submission, copies)
		errs := make([]error, copies)
		took := make([]time.Duration, copies)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range copies {
			wg.Go(func() {
				<-start
				begin := time.Now()
				subs[i], errs[i] = guard.Submit(ctx, fp, req+"#"+strconv.Itoa(i))
				took[i] = time.Since(begin)
			})
		}
		close(start)
		wg.Wait()
		rec := dupSubmitRecord{fp: fp}
		for i := range copies {
			w.Observe(0, took[i])
			if errs[i] != nil {
				continue
			}
			if !subs[i].Accepted {
				rec.originals = append(rec.originals, subs[i].OriginalID)
				continue
			}
			rec.accepted = append(rec.accepted, subs[i].OriginalID)
		}
		workers[w.ID].records = append(workers[w.ID].records, rec)
		return errors.Join(errs...)
	})
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)

	var recs []dupSubmitRecord
	for _, w := range workers {
		recs = append(recs, w.records...)
	}
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := processSubmissions(vctx, env.Admin, recs, processedKey); err != nil {
		return cell, err
	}
	processed, stored, err := d.readBack(vctx, env.Admin, recs, processedKey, env.Keys)
	if err != nil {
		return cell, err
	}

	var accepted, refused, dupRequests, extra, lost, wrongID, keyMismatch int64
	for i, rec := range recs {
		accepted += int64(len(rec.accepted))
		refused += int64(len(rec.originals))
		p := processed[i]
		switch {
		case len(p) > 1:
			dupRequests++
			extra += int64(len(p) - 1)
		case len(p) == 0:
			lost++
		}
		for _, orig := range rec.originals {
			if len(p) != 1 || orig != p[0] {
				wrongID++
			}
		}
		if len(p) != 1 || stored[i] != p[0] {
			keyMismatch++
		}
	}
	n := int64(len(recs))
	sub := result.Summarize(stats.Steps["submit"])
	submissions := n * int64(copies)
	perSec := 0.0
	if stats.Elapsed > 0 {
		perSec = float64(submissions) / stats.Elapsed.Seconds()
	}
	cell.Figures = map[string]float64{
		"requests":                 float64(n),
		"copies":                   float64(copies),
		"submissions":              float64(submissions),
		"submissions_per_s":        perSec,
		"submit_p50_us":            float64(sub.P50),
		"submit_p99_us":            float64(sub.P99),
		"submit_max_us":            float64(sub.Max),
		"accepted":                 float64(accepted),
		"refused":                  float64(refused),
		"processed_more_than_once": float64(dupRequests),
		"duplicates_processed":     float64(extra),
		"never_processed":          float64(lost),
		"wrong_original_id":        float64(wrongID),
		"guard_key_mismatch":       float64(keyMismatch),
		"errors":                   float64(stats.ErrorCount()),
	}
	cell.Invariants = []result.Invariant{
		Check("each request processed exactly once", dupRequests == 0 && lost == 0,
			"%d requests × %d copies: %d processed more than once (%d duplicate effects), %d never processed",
			n, copies, dupRequests, extra, lost),
		Check("repeats told the original's id", wrongID == 0,
			"%d copies refused; %d were told an id other than the one submission processed", refused, wrongID),
		Check("guard key names the processed submission", keyMismatch == 0,
			"%d requests whose guard key does not hold the id of their one processed submission", keyMismatch),
		Check("every submission answered", stats.ErrorCount() == 0,
			"%d submissions failed", stats.ErrorCount()),
	}
	if dupRequests > 0 {
		cell.Summary = fmt.Sprintf("%d of %d requests processed more than once: %d duplicate effects from %d copies each",
			dupRequests, n, extra, copies)
	} else {
		cell.Summary = fmt.Sprintf("%d requests × %d copies: each processed once; %d repeats refused with the original's id",
			n, copies, refused-wrongID)
	}
	return cell, nil
}

// processSubmissions processes every accepted submission: it pushes its id
// on its request's processed list, in pipelines of dupSubmitWriteChunk
// requests.
func processSubmissions(ctx context.Context, admin *redis.Client, recs []dupSubmitRecord, processedKey func(string) string) error {
	for lo := 0; lo < len(recs); lo += dupSubmitWriteChunk {
		chunk := recs[lo:min(lo+dupSubmitWriteChunk, len(recs))]
		_, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, rec := range chunk {
				for _, id := range rec.accepted {
					p.RPush(ctx, processedKey(rec.fp), id)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("process submissions: %w", err)
		}
	}
	return nil
}

// readBack reads, for every record, the server's processed list and the
// guard key's value ("" when missing), in pipelines.
func (d *DupSubmit) readBack(ctx context.Context, admin *redis.Client, recs []dupSubmitRecord, processedKey func(string) string, ks impl.Keyspace) ([][]string, []string, error) {
	processed := make([][]string, len(recs))
	stored := make([]string, len(recs))
	const chunk = 500
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		lists := make([]*redis.StringSliceCmd, hi-lo)
		gets := make([]*redis.StringCmd, hi-lo)
		_, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := lo; i < hi; i++ {
				lists[i-lo] = p.LRange(ctx, processedKey(recs[i].fp), 0, -1)
				gets[i-lo] = p.Get(ctx, impl.DedupeKey(ks, recs[i].fp))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, fmt.Errorf("read processed submissions: %w", err)
		}
		for i := lo; i < hi; i++ {
			processed[i] = lists[i-lo].Val()
			if err := lists[i-lo].Err(); err != nil {
				return nil, nil, fmt.Errorf("read processed submissions: %w", err)
			}
			v, err := gets[i-lo].Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, nil, fmt.Errorf("read guard key: %w", err)
			}
			stored[i] = v
		}
	}
	return processed, stored, nil
}
