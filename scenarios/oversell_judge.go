package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// stockReader reads an oversell cell's stock keys with the admin client:
// the one counter, or every shard of the sharded and sharded-slots
// strategies (sharded-slots' shards live in different slots: mget reads
// them with one GET each, on each shard's master).
type stockReader struct {
	admin redis.UniversalClient
	keys  []string
	// purchases are the hashes the purchases are recorded in: the item's
	// one hash, or every shard's (sharded-slots).
	purchases []string
	// holds are sharded-slots' holds hashes (units taken by walks that
	// have not finished); nil for the other strategies.
	holds []string
}

func newStockReader(env *Env, strategy string, shards int) *stockReader {
	r := &stockReader{admin: env.Admin, keys: []string{impl.StockKey(env.Keys, item)}, purchases: []string{impl.PurchasesKey(env.Keys, item)}}
	switch strategy {
	case impl.StockSharded:
		r.keys = make([]string, shards)
		for i := range r.keys {
			r.keys[i] = impl.StockShardKey(env.Keys, item, i)
		}
	case impl.StockShardedSlots:
		r.keys, r.purchases = nil, nil
		for _, sh := range impl.NewSlotShards(env.Keys, shards).Shards(item) {
			r.keys = append(r.keys, sh.Stock)
			r.purchases = append(r.purchases, sh.Purchases)
			r.holds = append(r.holds, sh.Holds)
		}
	}
	return r
}

// read fills vals (one per key; a missing key is 0) and returns their sum.
func (r *stockReader) read(ctx context.Context, vals []int64) (int64, error) {
	raw, err := mget(ctx, r.admin, r.keys...)
	if err != nil {
		return 0, err
	}
	var sum int64
	for i, v := range raw {
		vals[i] = 0
		if v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return 0, fmt.Errorf("stock key %s holds %T, not an integer", r.keys[i], v)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stock key %s holds %q: %w", r.keys[i], s, err)
		}
		vals[i] = n
		sum += n
	}
	return sum, nil
}

// stockSampler reads the stock while the sale runs: the lowest total and
// the lowest value of any one key (shard) it saw. A failed read is counted
// and the sampler goes on; failure reports the gap afterwards.
type stockSampler struct {
	n, failed int64
	firstErr  error
	minSum    int64
	minKey    int64 // lowest value one key showed (math.MaxInt64: none)
	minKeyAt  int   // which key
	vals      []int64
	// hist records every read for the history check (nil: none); reads
	// beyond its room are not recorded.
	hist *history.Log
}

func newStockSampler(initial int64, keys int) *stockSampler {
	return &stockSampler{minSum: initial, minKey: math.MaxInt64, minKeyAt: -1, vals: make([]int64, keys)}
}

// run samples every interval until ctx ends.
func (s *stockSampler) run(ctx context.Context, r *stockReader, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		call := s.hist.Now()
		sum, err := r.read(ctx, s.vals)
		if err == nil && s.hist.Room() > 0 {
			s.hist.Add(history.Entry{Kind: histcheck.StockRead, Call: call, Return: s.hist.Now(), Out: sum, In2: -1})
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return // the sale is over: a read cut short is no failure
		case err != nil:
			s.failed++
			if s.firstErr == nil {
				s.firstErr = err
			}
		default:
			s.n++
			s.minSum = min(s.minSum, sum)
			for i, v := range s.vals {
				if v < s.minKey {
					s.minKey, s.minKeyAt = v, i
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// failure returns nil when every sample was read, else an error saying how
// many reads failed and the first one's cause.
func (s *stockSampler) failure() error {
	if s.failed == 0 {
		return nil
	}
	return fmt.Errorf("stock sampler: %d of %d reads failed while the sale ran (the stock was not observed then), first: %w",
		s.failed, s.failed+s.n, s.firstErr)
}

// oversellJudgement gathers what the buyers were told and what the server
// holds after the sale, and judges the cell from both.
type oversellJudgement struct {
	o        *Oversell
	strategy string
	sampled  *stockSampler
	errors   int64  // failed operations, every class
	retries  string // the client's write re-sends (clientRetries), "" for none

	// What the buyers were told.
	bought, refused, clientUnits, replayed int64
	watchRetries, watchRetriesMax          int64
	minReply, minRefusedQty                int64
	told, lost                             []purchaseNote

	// What the server holds.
	final     int64
	finalVals []int64
	recorded  map[int64]int64 // units recorded per buyer
	records   int64           // recorded purchases, foreign ones included
	sold      int64           // units they hold
	foreign   int64           // recorded purchases whose id is no buyer's
	held      int64           // sharded-slots: units held by walks not finished
}

// tally adds up the workers' tallies.
func (j *oversellJudgement) tally(tallies []buyerTally) {
	j.minReply, j.minRefusedQty = j.o.Stock, -1
	for _, t := range tallies {
		j.bought += t.bought
		j.refused += t.refused
		j.clientUnits += t.units
		j.replayed += t.replayed
		j.watchRetries += t.retries
		j.watchRetriesMax = max(j.watchRetriesMax, t.maxRetries)
		j.minReply = min(j.minReply, t.minReply)
		if t.minRefusedQty >= 0 && (j.minRefusedQty < 0 || t.minRefusedQty < j.minRefusedQty) {
			j.minRefusedQty = t.minRefusedQty
		}
		j.told = append(j.told, t.told...)
		j.lost = append(j.lost, t.lost...)
	}
}

// buyer reports whether b is a buyer of the sale.
func (j *oversellJudgement) buyer(b int64) bool { return b >= 0 && b < j.o.Buyers }

// readBack reads the final stock and the purchases hash with the admin
// client.
func (j *oversellJudgement) readBack(ctx context.Context, env *Env, sr *stockReader) error {
	j.finalVals = make([]int64, len(sr.keys))
	final, err := sr.read(ctx, j.finalVals)
	if err != nil {
		return fmt.Errorf("read final stock: %w", err)
	}
	j.final = final
	j.recorded = map[int64]int64{}
	foreign := map[string]int64{}
	slots := j.strategy == impl.StockShardedSlots
	for _, key := range sr.purchases {
		// HSCAN may return a field twice: seen keeps this hash's fields.
		seen := map[string]bool{}
		var cursor uint64
		for {
			kv, next, err := env.Admin.HScan(ctx, key, cursor, "", 1000).Result()
			if err != nil {
				return fmt.Errorf("read purchases (HSCAN %s): %w", key, err)
			}
			for i := 0; i+1 < len(kv); i += 2 {
				id, raw := kv[i], kv[i+1]
				if seen[id] {
					continue
				}
				seen[id] = true
				qty, err := parseRecord(raw, slots)
				if err != nil {
					return fmt.Errorf("purchase %q holds %q: %w", id, raw, err)
				}
				// sharded-slots: a purchase taken from several shards has a
				// record on each; its units add up.
				j.sold += qty
				b, err := strconv.ParseInt(id, 10, 64)
				if err != nil || !j.buyer(b) || strconv.FormatInt(b, 10) != id {
					if _, dup := foreign[id]; !dup {
						j.foreign++
						j.records++
					}
					foreign[id] += qty
					continue
				}
				if _, dup := j.recorded[b]; !dup {
					j.records++
				}
				j.recorded[b] += qty
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	for _, key := range sr.holds {
		vals, err := env.Admin.HVals(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("read holds (HVALS %s): %w", key, err)
		}
		for _, v := range vals {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("hold in %s holds %q: %w", key, v, err)
			}
			j.held += n
		}
	}
	return nil
}

// parseRecord parses a purchase record's units: an integer, or for
// sharded-slots "<units taken on this shard>/<quantity>".
func parseRecord(raw string, slots bool) (int64, error) {
	if slots {
		taken, _, ok := impl.ParseSlotRecord(raw)
		if !ok {
			return 0, errors.New("not <taken>/<quantity>")
		}
		return taken, nil
	}
	qty, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a quantity: %w", err)
	}
	return qty, nil
}

// clientFigures are the figures known without the server's word.
func (j *oversellJudgement) clientFigures() map[string]float64 {
	return map[string]float64{
		"stock_initial":       float64(j.o.Stock),
		"purchases_ok":        float64(j.bought),
		"purchases_refused":   float64(j.refused),
		"purchases_replayed":  float64(j.replayed),
		"replies_lost":        float64(len(j.lost)),
		"stock_samples":       float64(j.sampled.n),
		"stock_sample_errors": float64(j.sampled.failed),
		"watch_retries":       float64(j.watchRetries),
		"watch_retries_max":   float64(j.watchRetriesMax),
		"errors":              float64(j.errors),
		"buyers":              float64(j.o.Buyers),
		"quantity_min":        float64(j.o.QuantityMin),
		"quantity_max":        float64(j.o.QuantityMax),
	}
}

// clientSummary is the summary of a cell whose server state could not be
// read: what the buyers were told.
func (j *oversellJudgement) clientSummary() string {
	s := fmt.Sprintf("buyers were told OK for %d units in %d purchases, %d refused", j.clientUnits, j.bought, j.refused)
	if n := len(j.lost); n > 0 {
		s += fmt.Sprintf("; %d replies lost, not settled (the server could not be read)", n)
	}
	return s
}

// atomicRecord reports whether the strategy records a purchase in the same
// atomic step as its deduction (watch, lua, idempotent, sharded; and
// sharded-slots, each shard's take with its record): a record exists if
// and only if some send of the purchase took the units.
func atomicRecord(strategy string) bool {
	switch strategy {
	case impl.StockWatch, impl.StockLua, impl.StockIdempotent, impl.StockSharded, impl.StockShardedSlots:
		return true
	}
	return false
}

// idempotentRecord reports whether the strategy also looks a purchase's id
// up before taking anything (watch, idempotent, sharded, sharded-slots), so a re-sent
// purchase cannot take its units twice. lua records atomically but does
// not look the id up.
func idempotentRecord(strategy string) bool {
	return atomicRecord(strategy) && strategy != impl.StockLua
}

// partial reports whether a purchase whose reply was lost is recorded
// with fewer units than it asked: a sharded-slots walk cut off after
// taking some of its units on some shards.
func (j *oversellJudgement) partial(n purchaseNote) bool {
	rec, ok := j.recorded[n.buyer]
	return ok && j.strategy == impl.StockShardedSlots && rec != n.qty
}

// resentTwice reports whether units the stock lost beyond the records
// (unrecorded > 0) are proven double deductions: the strategy records
// atomically (so no send takes units without a record) but does not look
// the id up, and the client re-sends writes whose replies were lost.
func (j *oversellJudgement) resentTwice(unrecorded int64) bool {
	return unrecorded > 0 && j.retries != "" && atomicRecord(j.strategy) && !idempotentRecord(j.strategy)
}

// judge fills the cell's figures, invariants, summary and Settled from
// what the buyers were told and what the server holds.
func (j *oversellJudgement) judge(cell *result.Cell) {
	o := j.o
	taken := o.Stock - j.final // units the stock lost
	sold := j.sold             // units the purchases hash holds
	unrecorded := taken - sold // > 0: taken without a record; < 0: recorded, never taken

	// What buyers were told against the record.
	told := make(map[int64]bool, len(j.told))
	var toldMissing, toldOtherQty int64
	for _, n := range j.told {
		told[n.buyer] = true
		switch rec, ok := j.recorded[n.buyer]; {
		case !ok:
			toldMissing++
		case rec != n.qty:
			toldOtherQty++
		}
	}
	// Each lost reply, looked up by its id.
	lost := make(map[int64]bool, len(j.lost))
	var lostApplied, lostUnrecorded, lostUnrecordedUnits, lostPartial int64
	for _, n := range j.lost {
		lost[n.buyer] = true
		if j.partial(n) {
			lostPartial++ // sharded-slots: a walk cut off with units held
			continue
		}
		if _, ok := j.recorded[n.buyer]; ok {
			lostApplied++
			continue
		}
		lostUnrecorded++
		lostUnrecordedUnits += n.qty
	}
	unexplained := j.foreign
	var recordedLost int64
	for b := range j.recorded {
		switch {
		case lost[b]:
			recordedLost++
		case !told[b]:
			unexplained++
		}
	}

	// Settling: a lost reply whose purchase is recorded happened, for every
	// strategy (a record is written only once the units are taken). One
	// that is not recorded did not happen when nothing was taken without a
	// record (unrecorded == 0) and the strategy cannot hide such a take:
	// watch, lua, idempotent and sharded record atomically; decr's counter
	// is exact unless the client re-sends its writes (a re-sent INCRBY
	// could offset an unrecorded take); naive's lost updates can offset
	// anything. lua's units taken beyond its records, when the client
	// re-sends writes, are double deductions of recorded purchases
	// (resentTwice): they say nothing against a missing record.
	settleAbsent := atomicRecord(j.strategy) && (unrecorded == 0 || j.resentTwice(unrecorded)) ||
		unrecorded == 0 && j.strategy == impl.StockDecr && j.retries == ""
	var settled, unsettled int64
	for _, n := range j.lost {
		_, applied := j.recorded[n.buyer]
		switch {
		case n.canceled:
			// The run's own stop: the runner does not count it as a failure.
		case j.partial(n):
			// Some of its units taken, not all: neither happened nor not.
			unsettled++
		case applied || settleAbsent:
			settled++
		default:
			unsettled++
		}
	}
	cell.Settled = settled

	minSeen := min(j.sampled.minSum, j.minReply, j.final)
	minKey, minKeyAt := j.sampled.minKey, j.sampled.minKeyAt
	for i, v := range j.finalVals {
		if v < minKey {
			minKey, minKeyAt = v, i
		}
	}
	twice := int64(0) // units surely deducted twice by the client's re-sends
	switch {
	case j.resentTwice(unrecorded):
		// A lost reply without a record took nothing: every unit beyond
		// the records was taken by a second send of a recorded purchase.
		lostUnrecordedUnits, lostUnrecorded = 0, 0
		twice = unrecorded
	case j.retries != "" && unrecorded > lostUnrecordedUnits:
		twice = unrecorded - lostUnrecordedUnits
	}
	demand := o.Buyers * o.QuantityMin
	cell.Figures = j.clientFigures()
	for k, v := range map[string]float64{
		"stock_final":            float64(j.final),
		"stock_min_observed":     float64(minSeen),
		"orders":                 float64(len(j.told)), // order records written: the purchases answered OK
		"purchases_recorded":     float64(j.records),
		"units_sold":             float64(sold),
		"oversold_units":         float64(max(0, sold-o.Stock)),
		"lost_stock_updates":     float64(-unrecorded),
		"units_taken_unrecorded": float64(max(0, unrecorded)),
		"units_deducted_twice":   float64(twice),
		"lost_replies_applied":   float64(lostApplied),
		"lost_replies_settled":   float64(settled),
		"unsold_with_demand":     0,
		// Acknowledged purchases the server has no record of: what a
		// failover loses (the runner's acknowledged_writes_lost).
		"purchases_ok_not_recorded": float64(toldMissing),
	} {
		cell.Figures[k] = v
	}
	sharded := j.strategy == impl.StockSharded || j.strategy == impl.StockShardedSlots
	if sharded {
		cell.Figures["shard_min_observed"] = float64(minKey)
	}
	if j.strategy == impl.StockShardedSlots {
		cell.Figures["units_held"] = float64(j.held)
		cell.Figures["lost_replies_partial"] = float64(lostPartial)
	}

	cause := j.unrecordedCause(unrecorded, lostUnrecorded, lostUnrecordedUnits)
	cell.Invariants = []result.Invariant{
		Check("final stock >= 0", j.final >= 0, "final stock %d", j.final),
		Check("stock never observed negative", minSeen >= 0,
			"lowest stock seen %d (%d samples while the sale ran, and every deduction's reply)", minSeen, j.sampled.n),
	}
	if sharded {
		cell.Invariants = append(cell.Invariants, Check("no shard ever negative", minKey >= 0,
			"lowest shard seen %d (shard %d; %d samples of all %d shards while the sale ran, and the final read)",
			minKey, minKeyAt, j.sampled.n, len(j.finalVals)))
	}
	if j.strategy == impl.StockShardedSlots {
		cell.Invariants = append(cell.Invariants, Check("no units held by an unfinished walk", j.held == 0,
			"%d units held on the shards by walks that neither completed nor gave them back (%d lost replies with part of their units recorded)", j.held, lostPartial))
	}
	detail := fmt.Sprintf("purchases record %d units; stock went from %d to %d (%d taken)", sold, o.Stock, j.final, taken)
	if cause != "" {
		detail += ": " + cause
	}
	cell.Invariants = append(cell.Invariants,
		Check("units sold == initial - final stock", sold == taken, "%s", detail),
		Check("every purchase answered OK is recorded", toldMissing+toldOtherQty == 0,
			"%d purchases answered OK: %d not in the server's record, %d recorded with another quantity",
			len(j.told), toldMissing, toldOtherQty),
		Check("every recorded purchase was answered OK or lost its reply", unexplained == 0,
			"%d recorded purchases: %d answered OK, %d whose reply was lost, %d neither (%d ids of no buyer)",
			j.records, j.records-recordedLost-unexplained, recordedLost, unexplained, j.foreign),
		Check("units sold <= initial stock", sold <= o.Stock, "sold %d units of %d", sold, o.Stock),
	)
	if demand >= o.Stock {
		// Every buyer came; a unit left over that a refused buyer could
		// have taken was stranded.
		stranded := j.minRefusedQty > 0 && j.final >= j.minRefusedQty
		if stranded {
			cell.Figures["unsold_with_demand"] = float64(j.final)
		}
		cell.Invariants = append(cell.Invariants, Check("nothing sellable left unsold", !stranded,
			"final stock %d; smallest refused purchase %d units", j.final, max(j.minRefusedQty, 0)))
	}

	// The summary leads with the worst finding and names every other one.
	var findings []string
	if sold > o.Stock {
		findings = append(findings, fmt.Sprintf("sold %d units of %d — oversold by %d", sold, o.Stock, sold-o.Stock))
	}
	if unrecorded != 0 {
		if len(findings) == 0 {
			findings = append(findings, fmt.Sprintf("sold %d units but stock fell by %d — %s", sold, taken, cause))
		} else {
			findings = append(findings, cause)
		}
	}
	if minSeen < 0 {
		if len(findings) == 0 {
			findings = append(findings, fmt.Sprintf("sold %d units of %d, final stock %d, but stock read %d mid-sale", sold, o.Stock, j.final, minSeen))
		} else {
			findings = append(findings, fmt.Sprintf("stock read %d mid-sale", minSeen))
		}
	}
	if sharded && minKey < 0 {
		if len(findings) == 0 {
			findings = append(findings, fmt.Sprintf("sold %d units of %d, final stock %d, but shard %d read %d", sold, o.Stock, j.final, minKeyAt, minKey))
		} else {
			findings = append(findings, fmt.Sprintf("shard %d read %d", minKeyAt, minKey))
		}
	}
	if n := toldMissing + toldOtherQty; n > 0 {
		findings = append(findings, fmt.Sprintf("%d purchases answered OK are not in the server's record as answered", n))
	}
	if unexplained > 0 {
		findings = append(findings, fmt.Sprintf("%d recorded purchases were never answered OK nor lost", unexplained))
	}
	if len(findings) == 0 {
		findings = append(findings, fmt.Sprintf("sold %d units of %d in %d purchases, final stock %d", sold, o.Stock, j.records, j.final))
	}
	cell.Summary = strings.Join(findings, "; ")
	if j.watchRetries > 0 {
		what := "watch retries"
		if j.strategy == impl.StockShardedSlots {
			what = "walks started again"
		}
		cell.Summary += fmt.Sprintf("; %d %s (max %d per purchase)", j.watchRetries, what, j.watchRetriesMax)
	}
	if j.held > 0 {
		cell.Summary += fmt.Sprintf("; %d units held by unfinished walks", j.held)
	}
	if n := int64(len(j.lost)); n > 0 {
		cell.Summary += fmt.Sprintf("; %d replies lost, %d of those purchases had happened", n, lostApplied)
		if unsettled > 0 {
			cell.Summary += fmt.Sprintf(" (%d could not be settled: %s)", unsettled, j.unsettledWhy(unrecorded))
		}
	}
	if j.replayed > 0 {
		cell.Summary += fmt.Sprintf("; %d purchases were answered from their record, not taken twice", j.replayed)
		if j.retries != "" {
			cell.Summary += fmt.Sprintf(" (the client re-sent them: %s)", j.retries)
		}
	}
}

// unrecordedCause says why the stock lost more (unrecorded > 0) or less
// (< 0) than the purchases hash records; "" when they agree.
func (j *oversellJudgement) unrecordedCause(unrecorded, lost, lostUnits int64) string {
	switch {
	case unrecorded < 0 && j.strategy == impl.StockDecr && j.retries != "":
		return fmt.Sprintf("%d units more in stock than the purchases leave: compensating INCRBYs re-sent by the client gave units back twice (%s)", -unrecorded, j.retries)
	case unrecorded < 0:
		return fmt.Sprintf("%d lost updates", -unrecorded)
	case unrecorded == 0:
		return ""
	case j.retries != "" && lostUnits == 0:
		return fmt.Sprintf("%d units deducted twice: the client re-sent purchases whose replies were lost (%s)", unrecorded, j.retries)
	case j.retries != "" && unrecorded > lostUnits:
		return fmt.Sprintf("%d units taken without a record: at least %d deducted twice, the client re-sent purchases whose replies were lost (%s); up to %d by the %d purchases whose replies were lost before their record",
			unrecorded, unrecorded-lostUnits, j.retries, lostUnits, lost)
	case j.retries != "":
		return fmt.Sprintf("%d units taken without a record: by the %d purchases whose replies were lost before their record (%d units), or deducted twice when the client re-sent purchases (%s)",
			unrecorded, lost, lostUnits, j.retries)
	case unrecorded <= lostUnits:
		return fmt.Sprintf("%d units taken without a record, by purchases whose replies were lost after the deduction (%d lost, %d units, not recorded)", unrecorded, lost, lostUnits)
	}
	return fmt.Sprintf("%d units taken without a record, more than the %d purchases whose replies were lost could take (%d units): something else changed the stock", unrecorded, lost, lostUnits)
}

// unsettledWhy says why lost replies without a record could not be taken
// for purchases that did not happen.
func (j *oversellJudgement) unsettledWhy(unrecorded int64) string {
	var why []string
	switch {
	case j.strategy == impl.StockNaive:
		why = append(why, "naive records after the deduction and loses updates, so a missing record proves nothing")
	case unrecorded != 0:
		why = append(why, fmt.Sprintf("the stock lost %d units the records do not account for", unrecorded))
	case j.retries != "":
		why = append(why, "the client re-sends writes ("+j.retries+"), so the stock's count cannot vouch for them")
	}
	if j.held > 0 {
		why = append(why, fmt.Sprintf("sharded-slots walks cut off with %d units taken and held, not all their quantity", j.held))
	}
	return strings.Join(why, "; ")
}
