package runner

import (
	"fmt"

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/wiretap"
	"github.com/paybench/paybench/reports/result"
)

// Figures of a cell on a Redis Cluster that met redirections (Cell.Figures):
// the MOVED and ASK replies the backend's connections received (counted
// on the wire, impl/wiretap), and how many operations failed with one
// (the redirections the backend surfaced rather than followed).
const (
	figMoved           = "cluster_moved_received"
	figAsk             = "cluster_ask_received"
	figRedirectsFailed = "cluster_redirect_errors"
)

// redirectCounter returns the redirection counter of a backend's
// connections, on a cluster (nil elsewhere); one per backend for the run,
// shared by every instance a cell opens.
func (r *run) redirectCounter(backend string) *wiretap.Counter {
	if !r.plan.Server.Cluster {
		return nil
	}
	if r.redirects == nil {
		r.redirects = map[string]*wiretap.Counter{}
	}
	c, ok := r.redirects[backend]
	if !ok {
		c = &wiretap.Counter{}
		r.redirects[backend] = c
	}
	return c
}

// newestKeys are SCAN patterns of the newest cell keyspace, its hot keys
// first: its stock keys (impl.StockKey, impl.StockShardKey: prefix +
// "stock:{item}..."), then every key (none before the first cell).
func (r *run) newestKeys() []string {
	if len(r.cellKeys) == 0 {
		return nil
	}
	ks := r.cellKeys[len(r.cellKeys)-1]
	return []string{ks.Prefix() + "stock:*", ks.Pattern()}
}

// clusterRedirects records the redirections the cell's backend met, when
// it met any: the figures, and a clause of the summary, "redirections:
// MOVED ×3, ASK ×120 received, 0 surfaced as failed operations (the rest
// followed)".
func clusterRedirects(c result.Cell, m serverMark) result.Cell {
	if m.redirects == nil {
		return c
	}
	got := m.redirects.Read().Sub(m.redirectsAt)
	failed := c.Errors[impl.ClassMoved] + c.Errors[impl.ClassAsk]
	if got.Moved == 0 && got.Ask == 0 && failed == 0 {
		return c
	}
	if c.Figures == nil {
		c.Figures = map[string]float64{}
	}
	if c.FigureMerge == nil {
		c.FigureMerge = map[string]string{}
	}
	for k, v := range map[string]int64{figMoved: got.Moved, figAsk: got.Ask, figRedirectsFailed: failed} {
		c.Figures[k] = float64(v)
		c.FigureMerge[k] = result.MergeSum
	}
	c.AddSummary(fmt.Sprintf("redirections: MOVED ×%d, ASK ×%d received, %d surfaced as failed operations (the rest followed)", got.Moved, got.Ask, failed))
	return c
}

// Figures of a cell under a failover.
const (
	// figAckLost counts the writes the backend was told succeeded that the
	// server lacks after the failover: an oversell cell's purchases
	// answered OK that are not in the purchases record, a stock.deduct
	// load's units answered OK that the stock does not miss.
	figAckLost = "acknowledged_writes_lost"
)

// ackLostFigures are the scenario figures that count acknowledged writes
// the server lacks, by the cell's kind.
var ackLostFigures = []string{"purchases_ok_not_recorded", "units_answered_ok_not_deducted"}

// failedOver reports whether a failover of the cell's schedule fired.
func failedOver(log []result.Fault) bool { return firedOf(log, faults.Failover) }

// judgeFailover makes a cell under a failover honest about the writes it
// lost. Redis replicates asynchronously: a master may acknowledge a write
// and be replaced by a replica that never received it. That is the
// server's durability, not the strategy's correctness, so:
//
//   - the cell gets acknowledged_writes_lost when its scenario measures it
//     (an oversell sale, a stock.deduct load), and its line says it;
//   - a judged verdict (PASS, FAIL, REPRODUCED, NOT-REPRODUCED) with
//     acknowledged writes lost becomes INCONCLUSIVE, saying how many: a
//     PASS never hides a lost write, a FAIL never blames the strategy for
//     the failover's loss;
//   - where the scenario does not measure it, a broken invariant (FAIL, or
//     REPRODUCED) becomes INCONCLUSIVE — the loss may explain the break,
//     so it neither blames the strategy nor confirms its expected bug —
//     and a PASS or NOT-REPRODUCED stands, its line saying that lost writes
//     were not measured;
//   - a failover fault that failed makes a judged verdict INCONCLUSIVE.
func judgeFailover(c result.Cell) result.Cell {
	if !failedOver(c.Faults) {
		return c
	}
	lost, measured := 0.0, false
	for _, f := range ackLostFigures {
		if v, ok := c.Figures[f]; ok {
			lost, measured = v, true
			break
		}
	}
	judged := c.Verdict == result.Pass || c.Verdict == result.Fail || c.Verdict == result.Reproduced || c.Verdict == result.NotReproduced
	for _, f := range c.Faults {
		if f.Kind == faults.Failover && f.Error != "" && judged {
			// Whether the replica took over, and when, is not known.
			return inconclusive(c, "the failover fault failed ("+f.Error+"): what it did to the cell's data is not known")
		}
	}
	if !measured {
		switch {
		case c.Verdict == result.Fail || c.Verdict == result.Reproduced:
			return inconclusive(c, "a failover happened during the cell and this scenario does not measure the acknowledged writes it lost: the broken invariant may be the failover's, not the strategy's ("+c.Summary+")")
		case judged:
			c.AddSummary("acknowledged writes lost in the failover: not measured by this scenario")
		}
		return c
	}
	if c.Figures == nil {
		c.Figures = map[string]float64{}
	}
	c.Figures[figAckLost] = lost
	if c.FigureMerge == nil {
		c.FigureMerge = map[string]string{}
	}
	c.FigureMerge[figAckLost] = result.MergeSum
	line := fmt.Sprintf("acknowledged writes lost in the failover: %.0f", lost)
	waited := ""
	if v, ok := c.Figures["lost_writes_wait_confirmed"]; ok && lost > 0 {
		// --wait-replicas: how many of the lost writes WAIT had confirmed.
		waited = fmt.Sprintf(", %.0f of them confirmed by WAIT", v)
		line += waited
	}
	if lost > 0 && judged {
		return inconclusive(c, fmt.Sprintf("the failover lost %.0f writes the client had been told succeeded%s (Redis replicates asynchronously: the promoted replica lacked them); a server-side durability loss, so the strategy is not judged (it %s: see the summary)", lost, waited, verdictWord(c.Verdict)))
	}
	c.AddSummary(line)
	return c
}

// verdictWord says what a verdict found, for a reason.
func verdictWord(v result.Verdict) string {
	switch v {
	case result.Pass, result.NotReproduced:
		return "held its invariants"
	case result.Fail, result.Reproduced:
		return "broke its invariants"
	}
	return "was " + string(v)
}
