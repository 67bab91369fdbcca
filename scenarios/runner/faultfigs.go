package runner

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/reports/result"
)

// Figures of a cell run under faults (Cell.Figures), computed after the
// cell from its series, the fault log and the server's connection
// counter. Times are on the cell's clock, the fault log's: a fault at
// Start sits at Start - Cell.SeriesStart on the series' axis.
//
// A fault covers [Start, End] (a repeated one, from its first firing to
// the end of its last); only faults that fired count. An interval of the
// series, (previous t_s, t_s], is "during faults" when it overlaps one
// (for a fault of no length, when it holds its instant), else "outside".
// Failed operations exclude refusals (contention, canceled), as the
// verdict does.
const (
	// figRecovery: for each fault that ended within the series, the time
	// from its end to the start of the first interval ending after it
	// that is clean (operations succeeded, none failed), 0 when the
	// interval the fault ended in was already clean; the largest over the
	// faults. The series has one-interval resolution (1 s), so it is an
	// upper bound at most one interval above the true recovery: the
	// interval before the clean one still failed somewhere. A fault
	// after which no interval was clean counts until the series' end and
	// in figUnrecovered. Faults that ended before the series started or
	// after it ended (one that lasted to the cell's end) have no
	// recovery. Absent when no fault ended within the series.
	figRecovery = "recovery_s"
	// figUnrecovered counts the faults after which no interval of the
	// series was clean (present with figRecovery).
	figUnrecovered = "faults_unrecovered"
	// figP99During and figP99Outside are the highest p99 (corrected, µs)
	// among the intervals with operations during faults, and outside
	// them. The highest interval p99 is an upper bound of the p99 of
	// those intervals' operations taken together (the p99 of a mixture
	// never exceeds the largest p99 of its parts); the series keeps no
	// per-interval histograms to compute it exactly. Absent when no such
	// interval has operations.
	figP99During  = "p99_during_faults_us"
	figP99Outside = "p99_outside_faults_us"
	// figErrorsDuring and figErrorsOutside count the failed operations of
	// the intervals during faults and outside them; they add up to the
	// cell's failed operations (refusals excluded). An error a fault
	// causes after its end (a reconnect, a retry) counts outside:
	// figRecovery measures that tail.
	figErrorsDuring  = "errors_during_faults"
	figErrorsOutside = "errors_outside_faults"
	// figConnsOpened is how many connections the server accepted during
	// the cell: the change of INFO stats total_connections_received from
	// the cell's start to its end. It counts every client's — the
	// backend's reconnects after a kill or a reset, but also the first
	// connections of a pool that grows during the cell, a scenario's own
	// extra clients, and the admin client's, which usually opens none —
	// so on a server shared with others it is an upper bound. After a
	// restart the counter starts again from 0, and the figure is the
	// connections accepted since the restart (a lower bound).
	figConnsOpened = "server_connections_opened"
)

// faultFigureMerge says how paybench merge combines the fault figures of
// several load generators: the worst recovery and p99, failures summed;
// every generator counts the others' connections too, so the largest.
var faultFigureMerge = map[string]string{
	figRecovery:      result.MergeMax,
	figUnrecovered:   result.MergeMax,
	figP99During:     result.MergeMax,
	figP99Outside:    result.MergeMax,
	figErrorsDuring:  result.MergeSum,
	figErrorsOutside: result.MergeSum,
	figConnsOpened:   result.MergeMax,
}

// infoTimeout bounds the read of the server's connection counter.
const infoTimeout = 5 * time.Second

// connCount is the server's total_connections_received at one moment.
type connCount struct {
	n  int64
	ok bool // read; false when no fault is planned or the read failed
}

// countConnections reads the server's connection counter at a cell's
// start, when the plan has faults (the figure is a fault figure).
func (r *run) countConnections(ctx context.Context) connCount {
	if len(r.plan.Faults) == 0 {
		return connCount{}
	}
	n, err := connectionsReceived(ctx, r.plan.Server.Admin())
	return connCount{n: n, ok: err == nil}
}

// connectionsReceived reads INFO stats total_connections_received.
func connectionsReceived(ctx context.Context, admin redis.UniversalClient) (int64, error) {
	info, err := admin.Info(ctx, "stats").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO stats: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_connections_received:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO stats total_connections_received %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("INFO stats has no total_connections_received")
}

// faultFigures adds the fault figures to a cell that ran under faults
// (none to a cell without): from its series and fault log, and the
// server's connections since m was taken.
func (r *run) faultFigures(ctx context.Context, c result.Cell, m serverMark) result.Cell {
	if len(c.Faults) == 0 {
		return c
	}
	figs := seriesFaultFigures(c.Series, c.SeriesStart, c.Faults)
	if m.conns.ok {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), infoTimeout)
		after, err := connectionsReceived(cctx, r.plan.Server.Admin())
		cancel()
		if err == nil {
			opened := after - m.conns.n
			if restartedBy(c.Faults) || opened < 0 {
				opened = after
			}
			figs[figConnsOpened] = float64(opened)
		}
	}
	if len(figs) == 0 {
		return c
	}
	if c.Figures == nil {
		c.Figures = map[string]float64{}
	}
	if c.FigureMerge == nil {
		c.FigureMerge = map[string]string{}
	}
	for k, v := range figs {
		c.Figures[k] = v
		if _, ok := c.FigureMerge[k]; !ok {
			c.FigureMerge[k] = faultFigureMerge[k]
		}
	}
	return c
}

// seriesFaultFigures computes the series' figures under the faults of
// log (figRecovery, figUnrecovered, figP99During, figP99Outside,
// figErrorsDuring, figErrorsOutside), the series starting start seconds
// after the faults' origin. A series without points gives none.
func seriesFaultFigures(series []result.Point, start float64, log []result.Fault) map[string]float64 {
	figs := map[string]float64{}
	if len(series) == 0 {
		return figs
	}
	type span struct{ s, e float64 }
	var spans []span
	for _, f := range log {
		if f.Count > 0 {
			spans = append(spans, span{f.Start - start, max(f.End, f.Start) - start})
		}
	}
	during := func(a, b float64) bool {
		for _, sp := range spans {
			if sp.e <= sp.s && a < sp.s && sp.s <= b || sp.e > sp.s && a < sp.e && sp.s < b {
				return true
			}
		}
		return false
	}
	var errsIn, errsOut int64
	var p99In, p99Out int64
	opsIn, opsOut := false, false
	prev := 0.0
	for _, p := range series {
		n := failedIn(p)
		if during(prev, p.T) {
			errsIn += n
			if p.Ops > 0 {
				opsIn, p99In = true, max(p99In, p.P99)
			}
		} else {
			errsOut += n
			if p.Ops > 0 {
				opsOut, p99Out = true, max(p99Out, p.P99)
			}
		}
		prev = p.T
	}
	figs[figErrorsDuring] = float64(errsIn)
	figs[figErrorsOutside] = float64(errsOut)
	if opsIn {
		figs[figP99During] = float64(p99In)
	}
	if opsOut {
		figs[figP99Outside] = float64(p99Out)
	}

	last := series[len(series)-1].T
	recovery, unrecovered, ended := 0.0, 0, false
	for _, sp := range spans {
		if sp.e < 0 || sp.e >= last {
			continue // ended outside the series: nothing seen after it
		}
		ended = true
		rec, clean := last-sp.e, false
		prev := 0.0
		for _, p := range series {
			if p.T > sp.e && p.Ops > 0 && failedIn(p) == 0 {
				rec, clean = max(prev-sp.e, 0), true
				break
			}
			prev = p.T
		}
		if !clean {
			unrecovered++
		}
		recovery = max(recovery, rec)
	}
	if ended {
		figs[figRecovery] = roundMillis(recovery)
		figs[figUnrecovered] = float64(unrecovered)
	}
	return figs
}

// failedIn counts an interval's failed operations, refusals excluded.
// A point without classes (a document written before them) counts all.
func failedIn(p result.Point) int64 {
	if len(p.ErrorsByClass) == 0 {
		return p.Errors
	}
	var n int64
	for k, v := range p.ErrorsByClass {
		if !refusalClasses[k] {
			n += v
		}
	}
	return n
}

// roundMillis rounds seconds to the millisecond, as the series' times are.
func roundMillis(s float64) float64 {
	return float64(time.Duration(s*float64(time.Second)).Round(time.Millisecond)) / float64(time.Second)
}
