package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/wiretap"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// refusalClasses are error classes that are an operation's own "no" (an
// optimistic transaction that gave up under contention), not a failure.
var refusalClasses = map[string]bool{"contention": true, "canceled": true}

// serverMark is what the runner knows of the server at a cell's start, to
// tell afterwards whether the server restarted or lost the cell's data.
type serverMark struct {
	runID    string
	uptime   int64
	sentinel string // a key the cell's keyspace holds while the cell runs
	ok       bool   // the server answered INFO
	conns    connCount
	// commands is each master's total_commands_processed at the cell's
	// start, on a cluster (nil on one server).
	commands map[string]int64
	// redirects is the backend's redirection counter (nil off a
	// cluster), redirectsAt its reading at the cell's start.
	redirects   *wiretap.Counter
	redirectsAt wiretap.Counts
}

// watchServer records the server's identity and plants a sentinel key in
// the newest cell keyspace; checkServer reads both back.
func (r *run) watchServer(ctx context.Context) serverMark {
	var m serverMark
	if len(r.cellKeys) == 0 {
		return m
	}
	admin := r.plan.Server.Admin()
	cctx, cancel := context.WithTimeout(ctx, readBackTimeout)
	defer cancel()
	if id, up, err := redisenv.Identity(cctx, admin); err == nil {
		m.runID, m.uptime, m.ok = id, up, true
	}
	m.conns = r.countConnections(cctx)
	m.commands = r.commandsPerMaster(cctx)
	m.sentinel = r.cellKeys[len(r.cellKeys)-1].Key("paybench", "sentinel")
	if err := admin.Set(cctx, m.sentinel, "1", 0).Err(); err != nil {
		m.sentinel = ""
	}
	return m
}

// checkServer returns why the cell cannot be judged because of the
// server ("" when the server is the one the cell started on, with the
// cell's data).
//
// A restart the cell's own fault schedule made (restarted) is expected:
// the cell is judged when its keys survived it (persistence on), and
// INCONCLUSIVE when they did not.
func (r *run) checkServer(ctx context.Context, m serverMark, restarted bool) string {
	admin := r.plan.Server.Admin()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
	defer cancel()
	if m.ok {
		id, up, err := redisenv.Identity(cctx, admin)
		switch {
		case err != nil:
			return "the server's identity could not be read after the cell: " + oneLine(err.Error())
		case (id != m.runID || up < m.uptime) && !restarted:
			return fmt.Sprintf("the server restarted during the cell (run_id %.8s → %.8s, up %ds): its data may be lost", m.runID, id, up)
		}
	}
	if m.sentinel != "" {
		n, err := admin.Exists(cctx, m.sentinel).Result()
		switch {
		case err != nil:
			return "the cell's sentinel key could not be read: " + oneLine(err.Error())
		case n == 0 && restarted:
			return "the server was restarted by the fault schedule and lost the cell's keys (no persistence: use --persistence aof to judge a cell across a restart)"
		case n == 0:
			return "the cell's keys vanished during the cell (a FLUSHDB/FLUSHALL, a failover to an empty replica, or another run deleting this prefix)"
		}
		_ = admin.Del(cctx, m.sentinel).Err()
	}
	return ""
}

// complete turns what a cell's run returned into its final state:
//
//   - an interrupted cell is not judged: INCONCLUSIVE, marked interrupted;
//   - a cell that could not run is ERROR (UNSUPPORTED when its backend
//     lacks the strategy), keeping whatever it measured;
//   - a cell whose own reads of the server failed is INCONCLUSIVE: its
//     judgement is incomplete, its measurements stand;
//   - a cell during which the server restarted or lost its keys is
//     INCONCLUSIVE, whatever its invariants say;
//   - a cell with failed operations is INCONCLUSIVE: a PASS needs every
//     operation to end in success or refusal, and a broken invariant
//     amid failures cannot be told from the failures' effect — unless the
//     scenario settled them against the server (Cell.Settled: it found
//     out whether each lost reply's operation happened, and judged with
//     that knowledge; Settled counts only operations whose outcome was
//     unknown, so refused commands such as NOPERM never settle), and a cell
//     where every operation failed proves nothing, settled or not;
//   - under a fault that fired: failures the fault explains and that
//     surely did not apply (refused, LOADING, BUSY, OOM) are counted in the
//     verdict line instead of withholding it, a cell whose setup the fault
//     broke is INCONCLUSIVE rather than ERROR, and a load cell stays
//     MEASURED with its failures as figures;
//   - otherwise the invariants judge it (Cell.Judge), and then its
//     history (judgeHistory): a history that is not linearizable FAILs a
//     strategy expected to hold and is evidence of a REPRODUCED one; a
//     history the check could not decide never lets a PASS stand. A
//     strategy expected to break whose history is not linearizable with
//     its failed operations' outcomes unknown is REPRODUCED although
//     operations failed (the break does not depend on them), and so is
//     one with a broken invariant the scenario marked Proven.
//
// The throughput headline counts the operations that did not fail. The
// returned error is err, for the caller to see connection failures.
func (r *run) complete(ctx context.Context, c result.Cell, m serverMark, err error) (result.Cell, error) {
	c = r.faultFigures(ctx, c, m)
	c = r.clusterKeys(ctx, c, m)
	c, err = r.judge(ctx, c, m, err)
	c = clusterRedirects(c, m)
	c = judgeFailover(c)
	if len(c.Faults) > 0 {
		c.Summary = underFaults(c.Summary, c.Faults)
	}
	return c, err
}

// judge is complete without the faults' line.
func (r *run) judge(ctx context.Context, c result.Cell, m serverMark, err error) (result.Cell, error) {
	faulted := firedAny(c.Faults)
	fails := countFailures(&c, faulted)
	if c.ElapsedSec > 0 {
		c.ThroughputOps = float64(max(c.Ops-fails.all, 0)) / c.ElapsedSec
	}
	if ctx.Err() != nil {
		c.Interrupted = true
		return inconclusive(c, "interrupted before the cell finished; not judged"), err
	}
	// The server's own changes come first: a restart explains failed
	// operations and failed reads alike.
	if why := r.checkServer(ctx, m, restartedBy(c.Faults)); why != "" {
		if err != nil {
			why += "; the cell then failed: " + oneLine(err.Error())
		}
		return inconclusive(c, why), nil
	}
	switch {
	case err != nil && errors.Is(err, scenarios.ErrJudgement):
		return inconclusive(c, oneLine(err.Error())), nil
	case err != nil && firedAny(c.Faults) && faultFailures[impl.Classify(err)]:
		// The fault hit the cell's own setup or bookkeeping: the cell
		// could not run because of what the plan did to the server.
		return inconclusive(c, "a fault stopped the cell before it could be judged: "+oneLine(err.Error())), nil
	case err != nil:
		if errext.IsSilent(err) {
			return c, err
		}
		return failed(c, err), err
	}
	if c.Ops > 0 && fails.all >= c.Ops {
		return inconclusive(c, fmt.Sprintf("all %d operations failed (%s): nothing was tested", c.Ops, joinNonEmpty(fails.detail, fails.excusedD))), nil
	}
	c.Judge()
	c = judgeHistory(c)
	if fails.excused > 0 {
		c.Summary += fmt.Sprintf("; %d operations refused while a fault held (%s), none applied", fails.excused, fails.excusedD)
	}
	blocking := fails.all - fails.excused - min(c.Settled, fails.unknown)
	if blocking > 0 && c.Verdict == result.Measured && faulted {
		// A load under faults measures what the faults did; it judges
		// nothing, so its failures are figures, not a reason to withhold
		// a verdict.
		return c, nil
	}
	if blocking > 0 && c.Verdict == result.Reproduced && c.History != nil && c.History.Result == result.HistoryNotLinearizable {
		// The history models the failed operations' outcomes as unknown
		// (each may or may not have happened) and is still not
		// linearizable: the break does not depend on what the failures did.
		c.Summary += fmt.Sprintf("; %d of %d operations failed (%s), and the history is not linearizable whatever they did", blocking, c.Ops, fails.detail)
		return c, nil
	}
	if blocking > 0 && c.Verdict == result.Reproduced && provenBreak(c.Invariants) {
		// A broken invariant whose break the scenario proved independent
		// of the failed operations: the break stands whatever they did.
		c.Summary += fmt.Sprintf("; %d of %d operations failed (%s), and the broken invariants marked proven do not depend on them", blocking, c.Ops, fails.detail)
		return c, nil
	}
	if blocking > 0 && c.Verdict != result.Unsupported && c.Verdict != result.Error {
		what := "passed"
		switch c.Verdict {
		case result.Fail, result.Reproduced:
			what = "broke its invariants"
		case result.NotReproduced:
			what = "did not break"
		case result.Measured:
			what = "was measured"
		}
		return inconclusive(c, fmt.Sprintf("%d of %d operations failed (%s); the cell %s, but a verdict needs every operation to end in success or refusal, or its outcome settled against the server", blocking, c.Ops, fails.detail, what)), nil
	}
	return c, nil
}

// firedOf reports whether a fault of the cell fired: of one of kinds, or
// of any kind when none is given.
func firedOf(log []result.Fault, kinds ...string) bool {
	for _, f := range log {
		if f.Count > 0 && (len(kinds) == 0 || slices.Contains(kinds, f.Kind)) {
			return true
		}
	}
	return false
}

// firedAny reports whether any fault of the cell fired.
func firedAny(log []result.Fault) bool { return firedOf(log) }

// provenBreak reports whether some broken invariant is Proven: broken
// whatever the cell's failed operations did.
func provenBreak(invs []result.Invariant) bool {
	for _, inv := range invs {
		if !inv.Holds && inv.Proven {
			return true
		}
	}
	return false
}

// joinNonEmpty joins the non-empty strings with ", ".
func joinNonEmpty(ss ...string) string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

// restartedBy reports whether the cell's faults restarted the server, or
// replaced a master of a cluster by its replica (a failover): either
// changes the server's identity on purpose.
func restartedBy(log []result.Fault) bool { return firedOf(log, faults.Restart, faults.Failover) }

// underFaults says in a verdict line what the cell held under: "...;
// under pause:1s@2s (SIGSTOP/SIGCONT), kill-conns@500ms/300ms ×12
// (CLIENT KILL ID)", naming faults that never fired.
func underFaults(summary string, log []result.Fault) string {
	var fired, never []result.Fault
	for _, f := range log {
		if f.Count > 0 {
			fired = append(fired, f)
		} else {
			never = append(never, f)
		}
	}
	if summary != "" {
		summary += "; "
	}
	if len(fired) > 0 {
		summary += "under " + faults.Describe(fired)
	}
	if len(never) > 0 {
		if len(fired) > 0 {
			summary += "; "
		}
		summary += "never fired (the cell ended first): " + faults.Describe(never)
	}
	return summary
}

// inconclusive marks c INCONCLUSIVE with its reason.
func inconclusive(c result.Cell, why string) result.Cell {
	c.Verdict = result.Inconclusive
	c.Reason = why
	return c
}

// faultRefusals are the classes of failures that surely did not apply
// and that a fault explains: a server down or restarting (refused,
// loading), stalled (busy) or made full (oom). Under a fault that fired,
// they do not stop a verdict; the line counts them.
//
// On a Redis Cluster under a reshard, MOVED, ASK, TRYAGAIN and CLUSTERDOWN
// are such refusals too: a node that answers them did not run the
// command.
var faultRefusals = map[string]bool{
	impl.ClassRefused: true, impl.ClassLoading: true, impl.ClassBusy: true, impl.ClassOOM: true,
	impl.ClassMoved: true, impl.ClassAsk: true, impl.ClassTryAgain: true, impl.ClassClusterDown: true,
}

// faultFailures are the classes of errors a fault makes: a cell that
// fails with one of them under a fault that fired is INCONCLUSIVE, not an
// ERROR of its own.
var faultFailures = map[string]bool{
	impl.ClassConnection: true, impl.ClassRefused: true, impl.ClassLoading: true,
	impl.ClassTimeout: true, impl.ClassBusy: true, impl.ClassOOM: true,
	impl.ClassMoved: true, impl.ClassAsk: true, impl.ClassTryAgain: true, impl.ClassClusterDown: true,
}

// failures are a cell's failed operations, by what they mean for a
// verdict.
type failures struct {
	all      int64 // every failed operation (refusals excluded)
	unknown  int64 // may have applied
	excused  int64 // surely not applied, explained by a fault that fired
	detail   string
	excusedD string
}

// countFailures sorts a cell's failed operations (refusals excluded) and
// describes them by class, with the server's words where recorded.
func countFailures(c *result.Cell, faulted bool) failures {
	var f failures
	var parts, excused []string
	classes := make([]string, 0, len(c.Errors))
	for k := range c.Errors {
		classes = append(classes, k)
	}
	sort.Slice(classes, func(i, j int) bool { return c.Errors[classes[i]] > c.Errors[classes[j]] })
	for _, k := range classes {
		n := c.Errors[k]
		if refusalClasses[k] || n == 0 {
			continue
		}
		f.all += n
		p := fmt.Sprintf("%s ×%d", k, n)
		if impl.MayHaveApplied(k) {
			f.unknown += n
		} else if faulted && faultRefusals[k] {
			f.excused += n
			excused = append(excused, p)
			continue
		}
		if s := c.ErrorSamples[k]; s != "" {
			p += fmt.Sprintf(": %q", s)
		}
		parts = append(parts, p)
	}
	f.detail, f.excusedD = strings.Join(parts, ", "), strings.Join(excused, ", ")
	return f
}

// VerdictError turns a document's verdicts into the run's exit code: any
// FAIL or ERROR is Fail (1), else any INCONCLUSIVE is Inconclusive (5),
// else any NOT-REPRODUCED is NotReproduced (4); nil when every cell is as
// expected. Its message names the first cell of the worst kind and why.
func VerdictError(doc *result.Document) error {
	rank := map[errext.ExitCode]int{errext.OK: 0, errext.NotReproduced: 1, errext.Inconclusive: 2, errext.Fail: 3}
	code, count := errext.OK, 0
	var first *result.Cell
	for i, c := range doc.Cells {
		var cc errext.ExitCode
		switch {
		case c.Search != nil && !c.Search.Found && c.Verdict.Judged() && c.Search.Stopped != "interrupted":
			// --find-max found no rate that met its gates.
			cc = errext.Fail
		case c.Verdict == result.Fail, c.Verdict == result.Error:
			cc = errext.Fail
		case c.Verdict == result.Inconclusive:
			cc = errext.Inconclusive
		case c.Verdict == result.NotReproduced:
			cc = errext.NotReproduced
		default:
			continue
		}
		count++
		if rank[cc] > rank[code] {
			code, first = cc, &doc.Cells[i]
		}
	}
	if code == errext.OK {
		return nil
	}
	why := first.Summary
	switch first.Verdict {
	case result.Error:
		why = first.Error
	case result.Inconclusive:
		why = first.Reason
	}
	msg := fmt.Sprintf("%s %s", first.Key(), first.Verdict)
	if why != "" {
		msg += ": " + why
	}
	if count > 1 {
		msg += fmt.Sprintf(" (and %d more cells not as expected)", count-1)
	}
	return errext.New(code, msg)
}

// judgeHistory adds the cell's history check to the verdict its
// invariants gave:
//
//   - not linearizable: a PASS becomes FAIL and a NOT-REPRODUCED becomes
//     REPRODUCED (the clients were told what no serial order explains),
//     and the witness joins the summary;
//   - unknown (not decided within --history-timeout, or incomplete): a
//     PASS becomes INCONCLUSIVE, saying why — an unknown result never
//     turns into a PASS; other verdicts stand, the line says it;
//   - linearizable or not checked: the verdict stands.
func judgeHistory(c result.Cell) result.Cell {
	c.JudgeHistory()
	return c
}
