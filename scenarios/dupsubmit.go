package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
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
	accepted  []string           // ids of the copies the guard accepted, to process
	originals []string           // OriginalID told to each refused copy
	failed    []dupSubmitFailure // the copies whose Submit failed, in copy order
}

// dupSubmitFailure is one copy whose Submit failed.
type dupSubmitFailure struct {
	id  string
	err error
}

// dupSubmitWriteChunk is how many requests' processed ids one pipeline
// pushes, and how many requests one read-back transaction reads.
const dupSubmitWriteChunk = 500

// dupSubmitExpirySlack is the lower bound's extra tolerance: the server
// stamps a claim's expiry with the clock it caches per event-loop
// iteration, which may run behind the TIME read at the start.
const dupSubmitExpirySlack = 100 * time.Millisecond

// dupSubmitWorker is one worker's records, on its own cache line.
type dupSubmitWorker struct {
	records []dupSubmitRecord
	// calls and rets are the copies' call and return times of the
	// request under way (history on), each copy writing its own slot.
	calls, rets []int64
	_           [64]byte
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
	// Every guard key is claimed after this moment, so it must expire no
	// earlier than a window after it.
	started, err := env.Admin.Time(ctx).Result()
	if err != nil {
		return cell, fmt.Errorf("read the server's TIME: %w", err)
	}

	workers := make([]dupSubmitWorker, conc)
	copies := d.Copies
	// What every submission was told, for the linearizability check: a
	// log per worker, and per worker room for one request's copies' times.
	var rec *history.Recorder
	hopts := env.Common.History
	if env.Common.Duration == 0 && hopts.Records(int64(d.Requests)*int64(copies)) {
		rec = history.New(history.Options{Clients: conc, PerClient: (d.Requests/conc + 1) * copies})
		for i := range workers {
			workers[i].calls, workers[i].rets = make([]int64, copies), make([]int64, copies)
		}
	}
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
		hl := rec.Log(w.ID)
		wk := &workers[w.ID]
		for i := range copies {
			wg.Go(func() {
				<-start
				if hl != nil {
					wk.calls[i] = hl.Now()
				}
				begin := time.Now()
				subs[i], errs[i] = guard.Submit(ctx, fp, dupSubmitID(req, i))
				took[i] = time.Since(begin)
				if hl != nil {
					wk.rets[i] = hl.Now()
				}
			})
		}
		close(start)
		wg.Wait()
		if hl != nil {
			for i := range copies {
				e := history.Entry{Kind: histcheck.DedupeSubmit, Key: w.Seq, In: int64(i), Call: wk.calls[i], Return: wk.rets[i]}
				switch {
				case errs[i] != nil && impl.MayHaveApplied(env.Backend.Classify(errs[i])):
					e.Unknown = true
				case errs[i] != nil:
					continue // surely not applied: no operation of the history
				default:
					e.OK, e.Out = subs[i].Accepted, dupSubmitCopy(req, subs[i].OriginalID)
				}
				hl.Add(e)
			}
		}
		rec := dupSubmitRecord{fp: fp}
		for i := range copies {
			w.Observe(0, took[i])
			switch {
			case errs[i] != nil:
				rec.failed = append(rec.failed, dupSubmitFailure{id: dupSubmitID(req, i), err: errs[i]})
			case !subs[i].Accepted:
				rec.originals = append(rec.originals, subs[i].OriginalID)
			default:
				rec.accepted = append(rec.accepted, subs[i].OriginalID)
			}
		}
		workers[w.ID].records = append(workers[w.ID].records, rec)
		return errors.Join(errs...)
	})
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)
	switch {
	case rec != nil:
		cell.History = histcheck.Check(ctx, histcheck.Dedupe(int64(d.Window), func(k int64) string { return "r" + strconv.FormatInt(k, 10) }),
			rec.Entries(), rec.Overflow(), hopts)
	case env.Common.Duration == 0:
		cell.History = hopts.NotChecked("dedupe guard", int64(d.Requests)*int64(copies))
	}

	var recs []dupSubmitRecord
	for _, w := range workers {
		recs = append(recs, w.records...)
	}
	n := int64(len(recs))
	sub := result.Summarize(stats.Steps["submit"])
	submissions := n * int64(copies)
	perSec := 0.0
	if stats.Elapsed > 0 {
		perSec = float64(submissions) / stats.Elapsed.Seconds()
	}
	cell.Figures = map[string]float64{
		"requests":          float64(n),
		"copies":            float64(copies),
		"submissions":       float64(submissions),
		"submissions_per_s": perSec,
		"submit_p50_us":     float64(sub.P50),
		"submit_p99_us":     float64(sub.P99),
		"submit_max_us":     float64(sub.Max),
		"window_ms":         float64(d.Window.Milliseconds()),
		"errors":            float64(stats.ErrorCount()),
	}

	// From here on paybench processes the accepted submissions and reads
	// the server back: a failure of its own is not the guard's, and leaves
	// the cell INCONCLUSIVE with the figures above.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := processSubmissions(vctx, env.Admin, recs, processedKey); err != nil {
		return cell, JudgementError(err)
	}
	server, err := d.readBack(vctx, env.Admin, recs, processedKey, env.Keys)
	if err != nil {
		return cell, JudgementError(err)
	}
	out := judgeDupSubmit(strategy, int64(copies), d.Window, started.UnixMicro(), recs, server, env.Backend.Classify)
	out.figures(cell.Figures)
	cell.Settled = out.settledOps
	cell.Invariants = out.invariants()
	cell.Summary = out.summary()
	return cell, nil
}

// dupSubmitID is the id of copy i of request req.
func dupSubmitID(req string, i int) string { return req + "#" + strconv.Itoa(i) }

// dupSubmitCopy is the copy number of id when it is a copy of req
// (dupSubmitID), else -1.
func dupSubmitCopy(req, id string) int64 {
	rest, ok := strings.CutPrefix(id, req+"#")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// dupSubmitServer is what the server holds for one request after the run.
type dupSubmitServer struct {
	// processed lists the ids processed for the request.
	processed []string
	// claimant is the guard key's value: the id of the submission that
	// claimed the fingerprint ("" when the key is gone).
	claimant string
	// expiry is when the guard key expires (server µs), or expiryGone,
	// expiryNever; read at server time now (µs), in the same transaction,
	// with slack µs of tolerance (expiryReader.slack).
	expiry, now, slack int64
}

// A guard key's expiry when it has none.
const (
	expiryGone  = -2 // the key no longer exists
	expiryNever = -1 // the key exists with no expiry
)

// dupSubmitOutcome is what a duplicate-submit cell's verdict is made of:
// its figures, its invariants and its summary are all computed from it.
type dupSubmitOutcome struct {
	strategy         string
	requests, copies int64
	window           time.Duration

	accepted, refused int64 // answers to the clients
	// The requests' fates, counting a claim whose reply was lost (settled
	// against the guard key) as the one submission let through.
	dupRequests, extra, never int64
	wrongID, keyMismatch      int64
	claimLost                 int64 // requests whose claimant's reply was lost
	unreached                 int64 // requests whose every copy failed without applying (not judged)
	keysExpired               int64 // guard keys gone at read-back, legitimately (not judged)

	// Failed submissions: lostReplies had an unknown outcome and were
	// settled (lostClaimed of them had claimed their request); unsettled
	// could not be; settledOps counts the operations (requests) whose
	// every failure was settled, for Cell.Settled.
	// unsettled failures are no invariant: the runner sees every failed
	// operation in the cell's errors and withholds a verdict for those not
	// settled (Cell.Settled), so the strategy is never blamed for them.
	failed, lostReplies, lostClaimed, unsettled, settledOps int64

	// The guard keys' expiries.
	expiryRead, noExpiry, early, late, missing int64
	expiryFirst                                string
}

// judgeDupSubmit judges each request from what its clients saw (recs) and
// what the server holds (server, index for index). classify names a
// failed submission's class (the backend's). started is the server time
// (µs) before the first submission. A failed submission whose outcome is
// unknown is settled, for the dedupe guard, by the guard key: the copy
// whose id it holds claimed the fingerprint (its SET applied; the request
// was let through once, by it), any other copy's SET changed nothing;
// and a key gone before a window since the start could have passed was
// never claimed, so no copy's SET applied (when every copy failed so, the
// request never reached the guard and is not judged). A key gone later
// expired and settles nothing. The naive guard overwrites the key, so its
// failures cannot be settled.
func judgeDupSubmit(strategy string, copies int64, window time.Duration, started int64, recs []dupSubmitRecord, server []dupSubmitServer, classify func(error) string) dupSubmitOutcome {
	o := dupSubmitOutcome{strategy: strategy, requests: int64(len(recs)), copies: copies, window: window}
	w := window.Microseconds()
	for i, rec := range recs {
		srv := server[i]
		// Claims may land a little before the start as the server's cached
		// clock runs: the lower bound takes the read's slack and
		// dupSubmitExpirySlack.
		slack := srv.slack + dupSubmitExpirySlack.Microseconds()
		o.accepted += int64(len(rec.accepted))
		o.refused += int64(len(rec.originals))
		answered := len(rec.accepted)+len(rec.originals) > 0
		// The guard key tells who claimed the fingerprint: the id it holds,
		// or nobody when it is gone before a window could have passed
		// since the run began. Gone later, it expired and tells nothing.
		expired := srv.expiry == expiryGone && srv.now >= started+w-slack
		// Every copy failed and none applied: the request never reached
		// the guard, which had nothing to judge.
		unreached := !answered && srv.expiry == expiryGone && !expired

		// The failed copies.
		lostClaim, allSettled := false, true
		var errs []error
		for _, f := range rec.failed {
			o.failed++
			errs = append(errs, f.err)
			class := classify(f.err)
			if !impl.MayHaveApplied(class) {
				o.unsettled++ // it surely did not apply, but the runner must see it failed
				allSettled = false
				continue
			}
			if strategy != impl.DedupeSetNX || expired {
				o.unsettled++
				allSettled = false
				continue
			}
			o.lostReplies++
			if srv.claimant == f.id {
				o.lostClaimed++
				lostClaim = true
			}
		}
		if len(rec.failed) > 0 && allSettled && unknownOutcome(classify(errors.Join(errs...))) {
			o.settledOps++
		}
		if lostClaim {
			o.claimLost++
		}
		if unreached {
			o.unreached++
			continue
		}

		// The one submission let through: processed, or a claim whose
		// reply was lost.
		p := srv.processed
		through := int64(len(p))
		winner := ""
		switch {
		case lostClaim:
			through++
			if len(p) == 0 {
				winner = srv.claimant
			}
		case len(p) == 1:
			winner = p[0]
		}
		switch {
		case through > 1:
			o.dupRequests++
			o.extra += through - 1
		case through == 0:
			o.never++
		}
		for _, orig := range rec.originals {
			if winner == "" || orig != winner {
				o.wrongID++
			}
		}

		// The guard key: its value and its expiry.
		switch {
		case expired:
			o.keysExpired++
		case winner == "" || srv.claimant != winner:
			o.keyMismatch++
		}
		switch at := srv.expiry; {
		case at == expiryGone && !expired:
			o.note(&o.missing, rec.fp, "gone before its window could have ended")
		case at == expiryGone:
		case at == expiryNever:
			o.expiryRead++
			o.note(&o.noExpiry, rec.fp, "no expiry: it would never expire")
		default:
			o.expiryRead++
			switch {
			case at < started+w-slack:
				o.note(&o.early, rec.fp, fmt.Sprintf("expires %s before a window after the run began", time.Duration(started+w-at)*time.Microsecond))
			case at > srv.now+w+srv.slack:
				o.note(&o.late, rec.fp, fmt.Sprintf("expires in %s, more than the window", time.Duration(at-srv.now)*time.Microsecond))
			}
		}
	}
	return o
}

// note records a guard key expiry violation.
func (o *dupSubmitOutcome) note(counter *int64, fp, what string) {
	*counter++
	if o.expiryFirst == "" {
		o.expiryFirst = fmt.Sprintf("dedupe:{%.12s…}: %s", fp, what)
	}
}

// expiryViolations counts the guard keys out of their expiry.
func (o dupSubmitOutcome) expiryViolations() int64 { return o.noExpiry + o.early + o.late + o.missing }

// figures adds the outcome's figures to f.
func (o dupSubmitOutcome) figures(f map[string]float64) {
	f["accepted"] = float64(o.accepted)
	f["refused"] = float64(o.refused)
	f["processed_more_than_once"] = float64(o.dupRequests)
	f["duplicates_processed"] = float64(o.extra)
	f["never_processed"] = float64(o.never)
	f["wrong_original_id"] = float64(o.wrongID)
	f["guard_key_mismatch"] = float64(o.keyMismatch)
	f["guard_keys_expired"] = float64(o.keysExpired)
	f["guard_keys_without_expiry"] = float64(o.noExpiry)
	f["guard_keys_expiry_out_of_window"] = float64(o.early + o.late + o.missing)
	f["submissions_failed"] = float64(o.failed)
	f["replies_lost_settled"] = float64(o.lostReplies)
	f["replies_lost_claimed"] = float64(o.lostClaimed)
	f["submissions_unsettled"] = float64(o.unsettled)
	f["requests_unreached"] = float64(o.unreached)
}

// invariants judges the outcome.
func (o dupSubmitOutcome) invariants() []result.Invariant {
	first := o.expiryFirst
	if first == "" {
		first = "none"
	}
	lostClaims, expired := "", ""
	if o.claimLost > 0 || o.unreached > 0 {
		lostClaims = fmt.Sprintf("; %d let through by a claim whose reply was lost, %d never reached the guard", o.claimLost, o.unreached)
	}
	if o.keysExpired > 0 {
		expired = fmt.Sprintf(" (%d keys expired before the read-back, not judged)", o.keysExpired)
	}
	return []result.Invariant{
		Check("each request processed exactly once", o.dupRequests == 0 && o.never == 0,
			"%d requests × %d copies: %d processed more than once (%d duplicate effects), %d never processed%s",
			o.requests, o.copies, o.dupRequests, o.extra, o.never, lostClaims),
		Check("repeats told the original's id", o.wrongID == 0,
			"%d copies refused; %d were told an id other than the one submission let through", o.refused, o.wrongID),
		Check("guard key names the processed submission", o.keyMismatch == 0,
			"%d requests whose guard key does not hold the id of their one submission let through%s", o.keyMismatch, expired),
		Check("guard keys expire after the window", o.expiryViolations() == 0,
			"%d guard key expiries read, each due a window (%s) after its claim: %d without an expiry, %d gone or due too early, %d due too late; first: %s",
			o.expiryRead, o.window, o.noExpiry, o.early+o.missing, o.late, first),
	}
}

// summary is the cell's line, from the same figures as its invariants.
func (o dupSubmitOutcome) summary() string {
	var s string
	switch {
	case o.dupRequests > 0:
		s = fmt.Sprintf("%d of %d requests processed more than once: %d duplicate effects from %d copies each",
			o.dupRequests, o.requests, o.extra, o.copies)
	case o.never > 0:
		s = fmt.Sprintf("%d of %d requests never processed (%d copies each)", o.never, o.requests, o.copies)
	case o.unreached > 0:
		s = fmt.Sprintf("%d requests × %d copies: each of the %d that reached the guard processed once", o.requests, o.copies, o.requests-o.unreached)
	default:
		s = fmt.Sprintf("%d requests × %d copies: each processed once", o.requests, o.copies)
	}
	switch {
	case o.wrongID > 0:
		s += fmt.Sprintf("; %d of %d refused repeats were told another id than the one let through", o.wrongID, o.refused)
	case o.refused > 0:
		s += fmt.Sprintf("; %d repeats refused with the original's id", o.refused)
	}
	if o.keyMismatch > 0 {
		s += fmt.Sprintf("; %d guard keys do not name the submission let through", o.keyMismatch)
	}
	if v := o.expiryViolations(); v > 0 {
		s += fmt.Sprintf("; %d guard keys out of the window's expiry (%d never expire)", v, o.noExpiry)
	}
	s += lostRepliesClause(o.lostReplies, o.lostClaimed, "claimed their request")
	if o.unsettled > 0 {
		s += fmt.Sprintf("; %d failed submissions not settled", o.unsettled)
	}
	return s
}

// processSubmissions processes every accepted submission: it pushes its id
// on its request's processed list, in pipelines of dupSubmitWriteChunk
// requests.
func processSubmissions(ctx context.Context, admin redis.UniversalClient, recs []dupSubmitRecord, processedKey func(string) string) error {
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

// readBack reads, for every record, the server's processed list, the guard
// key's value and its expiry (expiryReader), with the server's TIME, in one
// transaction per dupSubmitWriteChunk requests.
func (d *DupSubmit) readBack(ctx context.Context, admin redis.UniversalClient, recs []dupSubmitRecord, processedKey func(string) string, ks impl.Keyspace) ([]dupSubmitServer, error) {
	out := make([]dupSubmitServer, len(recs))
	var r expiryReader
	for lo := 0; lo < len(recs); {
		hi := min(lo+txChunk(admin, dupSubmitWriteChunk), len(recs))
		var clock *redis.TimeCmd
		lists := make([]*redis.StringSliceCmd, hi-lo)
		gets := make([]*redis.StringCmd, hi-lo)
		ttls := make([]*redis.Cmd, hi-lo)
		_, err := admin.TxPipelined(ctx, func(p redis.Pipeliner) error {
			clock = p.Time(ctx)
			for i := lo; i < hi; i++ {
				key := impl.DedupeKey(ks, recs[i].fp)
				lists[i-lo] = p.LRange(ctx, processedKey(recs[i].fp), 0, -1)
				gets[i-lo] = p.Get(ctx, key)
				ttls[i-lo] = r.queue(ctx, p, key)
			}
			return nil
		})
		if err != nil && r.retry(ttls[0]) {
			continue // the same chunk again, with PTTL
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read processed submissions and guard keys: %w", err)
		}
		now := clock.Val().UnixMicro()
		for i := lo; i < hi; i++ {
			s := &out[i]
			s.now, s.slack = now, r.slack()
			var err error
			if s.processed, err = lists[i-lo].Result(); err != nil {
				return nil, fmt.Errorf("read processed submissions: %w", err)
			}
			if s.claimant, err = gets[i-lo].Result(); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("read guard key: %w", err)
			}
			at, gone, never, err := r.at(ttls[i-lo], now)
			switch {
			case err != nil:
				return nil, fmt.Errorf("read guard key's expiry: %w", err)
			case gone:
				s.expiry = expiryGone
			case never:
				s.expiry = expiryNever
			default:
				s.expiry = at
			}
		}
		lo = hi
	}
	return out, nil
}
