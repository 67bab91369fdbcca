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
	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newLostReply() }) }

// LostReply is a steady sale under killed connections that counts exactly
// the purchases whose replies were lost although they happened on the
// server (lost_applied), and those that happened twice (applied_twice).
//
// Each purchase buys one unit of an item of its own ("lr-<n>", seeded with
// lostReplyStock units before the sale, so it never runs out), so the
// server's state settles every purchase by itself: the units its item lost
// say how many times it was applied, whatever its reply said, with no race
// between buyers to blur it. The scenario's own fault kills every
// connection of the backend under test (CLIENT KILL ID of the connections
// named impl.DefaultClientName, from a goroutine outside the timed
// operation) every KillEvery, so that the scenario shows lost replies
// without --fault; with --fault (Env.Faulted), or KillEvery 0, the faults
// are the plan's alone.
type LostReply struct {
	// Purchases is how many purchases the sale makes.
	Purchases int64
	// KillEvery is the period of the scenario's own connection kills (0:
	// none).
	KillEvery time.Duration
}

// lostReplyStock is what each purchase's item holds before the sale.
const lostReplyStock = 1000

// lostReplyChunk is how many keys one read-back or seeding pipeline holds.
const lostReplyChunk = 1000

// maxLostReplyPurchases bounds --purchases (one item, two keys, each).
const maxLostReplyPurchases = 1_000_000

func newLostReply() *LostReply {
	return &LostReply{Purchases: 20000, KillEvery: 200 * time.Millisecond}
}

// Name implements Scenario.
func (l *LostReply) Name() string { return "lost-reply" }

// Description implements Scenario.
func (l *LostReply) Description() string {
	return "steady sale while the backend's connections are killed every 200 ms (its own fault, --kill-every, unless --fault is given): counts purchases that happened although reported failed, and twice"
}

// Strategies implements Scenario.
func (l *LostReply) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.StockNaive, Expect: result.Break, Note: "GET, SET, then HSET of the record: a lost reply can leave units taken without a record"},
		{Name: impl.StockLua, Expect: result.Hold, Note: "one script, no id look-up: holds unless the client re-sends writes"},
		{Name: impl.StockIdempotent, Expect: result.Hold, Note: "one script, id looked up first: never applied twice"},
	}
}

// Flags implements Scenario.
func (l *LostReply) Flags(fs *pflag.FlagSet) {
	fs.Int64Var(&l.Purchases, "purchases", l.Purchases, "purchases in the sale (each buys one unit of an item of its own)")
	fs.DurationVar(&l.KillEvery, "kill-every", l.KillEvery, "kill the backend's connections this often (0: only --fault's faults)")
}

// Validate implements Scenario.
func (l *LostReply) Validate() error {
	switch {
	case l.Purchases <= 0 || l.Purchases > maxLostReplyPurchases:
		return fmt.Errorf("--purchases must be 1..%d, got %d", maxLostReplyPurchases, l.Purchases)
	case l.KillEvery < 0 || l.KillEvery > 0 && l.KillEvery < 10*time.Millisecond:
		return fmt.Errorf("--kill-every must be 0 or >= 10ms, got %s", l.KillEvery)
	}
	return nil
}

// Params implements Scenario.
func (l *LostReply) Params() map[string]string {
	return map[string]string{
		"purchases":  strconv.FormatInt(l.Purchases, 10),
		"kill_every": l.KillEvery.String(),
	}
}

// Outcomes of one purchase, as its buyer was told.
const (
	lrUnsent   uint8 = iota // never made (the run stopped first)
	lrOK                    // answered OK
	lrRefused               // answered refused
	lrLost                  // failed in a way that may have applied
	lrFailed                // failed surely unapplied (or the run's own stop)
	lrCanceled              // lost because the run itself was stopped
)

func lostReplyItem(n int64) string { return "lr-" + strconv.FormatInt(n, 10) }

// Run implements Scenario.
func (l *LostReply) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	sb, ok := env.Backend.(impl.StockBackend)
	if !ok {
		return cell, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	stock, err := sb.Stock(strategy, impl.StockOptions{Keys: env.Keys})
	if err != nil {
		return cell, err
	}
	if err := l.seed(ctx, env); err != nil {
		return cell, fmt.Errorf("seed stock: %w", err)
	}
	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}
	outcome := make([]uint8, l.Purchases) // one writer per index: the purchase's worker

	killCtx, stopKills := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var kills, killed int
	var killErr error
	if l.KillEvery > 0 && !env.Faulted {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kills, killed, killErr = killEvery(killCtx, env.Admin, impl.DefaultClientName(env.Backend.Name()), l.KillEvery)
		}()
	}
	classify := env.Backend.Classify
	stats, runErr := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Requests:    l.Purchases,
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		if w.Seq < 0 || w.Seq >= l.Purchases {
			return nil
		}
		id := strconv.FormatInt(w.Seq, 10)
		d, err := stock.Purchase(ctx, lostReplyItem(w.Seq), id, 1)
		switch {
		case err != nil:
			switch class := classify(err); {
			case class == impl.ClassCanceled:
				outcome[w.Seq] = lrCanceled
			case impl.MayHaveApplied(class):
				outcome[w.Seq] = lrLost
			default:
				outcome[w.Seq] = lrFailed
			}
			return err
		case d.OK:
			outcome[w.Seq] = lrOK
		default:
			outcome[w.Seq] = lrRefused
		}
		return nil
	})
	stopKills()
	wg.Wait()
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)

	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	j := lostReplyJudgement{strategy: strategy, retries: clientRetries(env.Backend), kills: kills, killed: killed}
	if err := j.readBack(vctx, env, outcome); err != nil {
		return cell, JudgementError(err)
	}
	j.judge(&cell)
	if killErr != nil {
		return cell, JudgementError(fmt.Errorf("the scenario's connection kills failed: %w", killErr))
	}
	return cell, nil
}

// seed sets every purchase's item to lostReplyStock units, with the admin
// client, in pipelines.
func (l *LostReply) seed(ctx context.Context, env *Env) error {
	for lo := int64(0); lo < l.Purchases; lo += lostReplyChunk {
		hi := min(lo+lostReplyChunk, l.Purchases)
		_, err := env.Admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for n := lo; n < hi; n++ {
				p.Set(ctx, impl.StockKey(env.Keys, lostReplyItem(n)), lostReplyStock, 0)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// killEvery kills the connections named name every period until ctx ends,
// and returns how many rounds ran and how many connections they killed.
func killEvery(ctx context.Context, admin redis.UniversalClient, name string, period time.Duration) (rounds, killed int, err error) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return rounds, killed, nil
		case <-t.C:
		}
		n, kerr := faults.KillNamedConns(ctx, admin, name)
		if kerr != nil && ctx.Err() == nil {
			return rounds, killed, kerr
		}
		rounds++
		killed += n
	}
}

// lostReplyJudgement is what a lost-reply cell's buyers were told and what
// the server holds.
type lostReplyJudgement struct {
	strategy      string
	retries       string // the client's write re-sends (clientRetries), "" for none
	kills, killed int

	ok, refused, lost, lostCanceled, failed int64
	lostApplied, appliedTwice, okNotTaken   int64
	unitsDeducted, unitsRecorded            int64
	settled                                 int64
}

// readBack reads every item's stock and record and settles each purchase
// by what its item lost.
func (j *lostReplyJudgement) readBack(ctx context.Context, env *Env, outcome []uint8) error {
	for lo := 0; lo < len(outcome); lo += lostReplyChunk {
		hi := min(lo+lostReplyChunk, len(outcome))
		stocks := make([]*redis.StringCmd, hi-lo)
		recs := make([]*redis.StringCmd, hi-lo)
		_, err := env.Admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for n := lo; n < hi; n++ {
				item := lostReplyItem(int64(n))
				stocks[n-lo] = p.Get(ctx, impl.StockKey(env.Keys, item))
				recs[n-lo] = p.HGet(ctx, impl.PurchasesKey(env.Keys, item), strconv.Itoa(n))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read back: %w", err)
		}
		for i := range stocks {
			left, err := stocks[i].Int64()
			if err != nil {
				return fmt.Errorf("read back stock of %s: %w", lostReplyItem(int64(lo+i)), err)
			}
			rec, err := recs[i].Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("read back record of purchase %d: %w", lo+i, err)
			}
			j.add(outcome[lo+i], lostReplyStock-left, rec)
		}
	}
	return nil
}

// add counts one purchase: what its buyer was told, the units its item
// lost, and the units recorded for it.
func (j *lostReplyJudgement) add(told uint8, deducted, recorded int64) {
	j.unitsDeducted += deducted
	j.unitsRecorded += recorded
	if deducted >= 2 {
		j.appliedTwice++
	}
	switch told {
	case lrOK:
		j.ok++
		if deducted == 0 {
			j.okNotTaken++
		}
	case lrRefused:
		j.refused++
	case lrLost, lrCanceled:
		j.lost++
		if told == lrCanceled {
			j.lostCanceled++
		} else {
			j.settled++ // the item's stock says whether it happened
		}
		if deducted > 0 {
			j.lostApplied++
		}
	case lrFailed:
		j.failed++
	}
}

// judge fills the cell's figures, invariants and summary.
func (j *lostReplyJudgement) judge(cell *result.Cell) {
	cell.Settled = j.settled
	cell.Figures = map[string]float64{
		"purchases_ok":      float64(j.ok),
		"purchases_refused": float64(j.refused),
		"lost_replies":      float64(j.lost),
		"lost_applied":      float64(j.lostApplied),
		"applied_twice":     float64(j.appliedTwice),
		"units_deducted":    float64(j.unitsDeducted),
		"units_recorded":    float64(j.unitsRecorded),
		"kill_rounds":       float64(j.kills),
		"conns_killed":      float64(j.killed),
	}
	by := ""
	if j.retries != "" && j.appliedTwice > 0 {
		by = " (the client re-sent purchases whose replies were lost: " + j.retries + ")"
	}
	cell.Invariants = []result.Invariant{
		Check("applied_twice == 0", j.appliedTwice == 0, "%d purchases applied twice%s", j.appliedTwice, by),
		Check("every unit deducted is recorded", j.unitsDeducted == j.unitsRecorded,
			"%d units deducted, %d recorded", j.unitsDeducted, j.unitsRecorded),
		Check("every purchase answered OK took its unit", j.okNotTaken == 0,
			"%d purchases answered OK took nothing", j.okNotTaken),
	}
	cell.Summary = fmt.Sprintf("%d replies lost, %d of those purchases had happened (lost_applied); %d applied twice%s; %d units deducted, %d recorded; %d OK",
		j.lost, j.lostApplied, j.appliedTwice, by, j.unitsDeducted, j.unitsRecorded, j.ok)
	if j.kills > 0 {
		cell.Summary += fmt.Sprintf("; the scenario killed %d connections in %d rounds", j.killed, j.kills)
	}
}
