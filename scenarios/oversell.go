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

func init() { Register(func() Scenario { return newOversell() }) }

// Oversell is the flash sale: S units, B buyers each wanting q units, C at
// a time. The seed's read-compare-write deduction sells more than there is.
//
// One measured operation is one buyer's Stock.Purchase through the backend
// under test, and nothing else; its purchase id is the buyer's sequence
// number. The server records every purchase in the item's purchases hash
// (impl.PurchasesKey): watch, lua and sharded in the same atomic step as
// the deduction, so a record exists if and only if the units were taken,
// and naive and decr right after it, as the seed would. Each worker keeps in
// memory, in buffers sized before the sale, the purchases it was told OK and
// those whose reply was lost (a failure that may have applied,
// impl.MayHaveApplied). After the sale the verdict reads the purchases hash
// and the stock back with the admin client: units sold are the recorded
// purchases, checked against what the stock lost and against what buyers
// were told; each lost reply is looked up by its id, so the cell knows
// whether that purchase happened (Cell.Settled) instead of guessing. The
// purchases answered OK are also written as order records after the sale
// (what the buyers were told, as the seed's shop would keep it), with the
// admin client, in pipelines.
type Oversell struct {
	Stock       int64
	Buyers      int64
	QuantityMin int64
	QuantityMax int64
	Think       time.Duration
	Shards      int
	MaxRetries  int
	SampleEvery time.Duration

	quantity string
}

func newOversell() *Oversell {
	return &Oversell{Stock: 100, Buyers: 1000, QuantityMin: 1, QuantityMax: 1, Shards: 8, MaxRetries: 64, SampleEvery: 200 * time.Microsecond, quantity: "1"}
}

// Name implements Scenario.
func (o *Oversell) Name() string { return "oversell" }

// Description implements Scenario.
func (o *Oversell) Description() string {
	return "flash sale: buyers race to deduct stock; the seed's GET/compare/SET oversells"
}

// Strategies implements Scenario.
func (o *Oversell) Strategies() []Strategy {
	return []Strategy{
		{Name: impl.StockNaive, Expect: result.Break, Note: "the seed's reduce_stock: GET, compare, SET"},
		{Name: impl.StockDecr, Expect: result.Break, Note: "DECRBY then INCRBY back: right total, transiently negative"},
		{Name: impl.StockWatch, Expect: result.Hold, Note: "WATCH/MULTI/EXEC with bounded retries"},
		{Name: impl.StockLua, Expect: result.Hold, Note: "one check-and-deduct-and-record script, no id look-up: a re-sent purchase deducts again"},
		{Name: impl.StockIdempotent, Expect: result.Hold, Note: "the lua script, idempotent: a recorded id is answered from its record"},
		{Name: impl.StockSharded, Expect: result.Hold, Note: "stock over hash-tagged shards, all-shard fallback"},
		{Name: impl.StockShardedSlots, Expect: result.Hold, Note: "stock over shards in different slots (masters), walked one shard script at a time"},
	}
}

// Flags implements Scenario.
func (o *Oversell) Flags(fs *pflag.FlagSet) {
	fs.Int64Var(&o.Stock, "stock", o.Stock, "units in stock at the start")
	fs.Int64Var(&o.Buyers, "buyers", o.Buyers, "number of buyers (one purchase attempt each)")
	fs.StringVar(&o.quantity, "quantity", o.quantity, "units each buyer wants: N, or MIN-MAX drawn per buyer")
	fs.DurationVar(&o.Think, "think", o.Think, "naive only: pause between the read and the write (widens the race)")
	fs.IntVar(&o.Shards, "shards", o.Shards, "sharded and sharded-slots only: number of stock shards")
	fs.IntVar(&o.MaxRetries, "max-retries", o.MaxRetries, "watch: optimistic retries before giving up; sharded-slots: walks started again while other walks hold units")
}

// Validate implements Scenario.
func (o *Oversell) Validate() error {
	lo, hi, err := parseRange(o.quantity)
	if err != nil {
		return fmt.Errorf("--quantity: %w", err)
	}
	o.QuantityMin, o.QuantityMax = lo, hi
	for _, q := range []int64{lo, hi} {
		if err := impl.ValidateQuantity(q); err != nil {
			return fmt.Errorf("--quantity: %w", err)
		}
	}
	switch {
	case o.Stock < 0:
		return fmt.Errorf("--stock must be >= 0, got %d", o.Stock)
	case o.Buyers <= 0:
		return fmt.Errorf("--buyers must be > 0, got %d", o.Buyers)
	case o.Think < 0:
		return fmt.Errorf("--think must be >= 0, got %s", o.Think)
	case o.Shards <= 0 || o.Shards > 1024:
		return fmt.Errorf("--shards must be 1..1024, got %d", o.Shards)
	case o.MaxRetries <= 0:
		return fmt.Errorf("--max-retries must be > 0, got %d", o.MaxRetries)
	}
	return nil
}

// Params implements Scenario.
func (o *Oversell) Params() map[string]string {
	return map[string]string{
		"stock":    strconv.FormatInt(o.Stock, 10),
		"buyers":   strconv.FormatInt(o.Buyers, 10),
		"quantity": o.quantity,
		"think":    o.Think.String(),
		"shards":   strconv.Itoa(o.Shards),
	}
}

// parseRange parses "N" or "MIN-MAX".
func parseRange(s string) (lo, hi int64, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err = strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not N or MIN-MAX", s)
	}
	hi = lo
	if isRange {
		hi, err = strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if err != nil || hi < lo {
			return 0, 0, fmt.Errorf("%q is not N or MIN-MAX", s)
		}
	}
	return lo, hi, nil
}

// buyerTally is one worker's client-side tally, on its own cache line.
type buyerTally struct {
	bought, refused, units int64
	replayed               int64 // purchases answered from their record
	minReply               int64 // lowest stock value a reply showed
	retries, maxRetries    int64
	minRefusedQty          int64
	// told are the purchases answered OK; lost those whose reply was lost
	// (the failure's class may have applied). Both are sized before the
	// sale for every buyer the worker can have.
	told, lost []purchaseNote
	_          [64]byte
}

// purchaseNote is one buyer's purchase as the buyer knows it. It holds no
// pointer, so the garbage collector never scans the buffers of them.
type purchaseNote struct {
	buyer, qty int64
	seen       int64 // the stock the reply showed (answered OK only)
	// canceled: the reply was lost because the run itself was stopped
	// (lost replies only), which the runner does not count as a failure.
	canceled bool
	// unconfirmed: the WAIT after the purchase (--wait-replicas) did not
	// confirm it (answered OK only).
	unconfirmed bool
}

// orderWriteChunk is how many order records one pipeline writes.
const orderWriteChunk = 500

// Bounds of what a sale sizes before it starts.
const (
	// maxPrebuiltIDs is how many purchase ids are formatted up front.
	maxPrebuiltIDs = 1 << 16
	// maxNotesPerWorker bounds the room for purchases answered OK each
	// worker reserves.
	maxNotesPerWorker = 1 << 16
	// maxLostPerWorker is the room for lost replies each worker reserves.
	maxLostPerWorker = 1024
)

const item = "sku-1"

// maxSampledReads bounds the sampler's reads a history keeps (the first
// ones: a long sale's later reads are not checked).
const maxSampledReads = 1 << 15

// Run implements Scenario.
func (o *Oversell) Run(ctx context.Context, env *Env, strategy string) (result.Cell, error) {
	var cell result.Cell
	sb, ok := env.Backend.(impl.StockBackend)
	if !ok {
		return cell, fmt.Errorf("%s: %w", env.Backend.Name(), impl.ErrNotSupported)
	}
	stock, err := sb.Stock(strategy, impl.StockOptions{Keys: env.Keys, Think: o.Think, Shards: o.Shards, MaxRetries: o.MaxRetries})
	if err != nil {
		return cell, err
	}
	if err := stock.Set(ctx, item, o.Stock); err != nil {
		return cell, fmt.Errorf("seed stock: %w", err)
	}
	sr := newStockReader(env, strategy, o.Shards)

	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}
	tallies := make([]buyerTally, conc)
	perWorker := o.Buyers/int64(conc) + 1 // a fixed count is split evenly
	for i := range tallies {
		tallies[i].minReply = o.Stock
		tallies[i].minRefusedQty = -1
		// A worker is told OK at most once per unit in stock (unless the
		// strategy oversells) and loses few replies; beyond these sizes (and
		// maxNotesPerWorker) a buffer grows.
		tallies[i].told = make([]purchaseNote, 0, min(perWorker, o.Stock/o.QuantityMin+1, maxNotesPerWorker))
		tallies[i].lost = make([]purchaseNote, 0, min(perWorker, maxLostPerWorker))
	}
	// Purchase ids, built before the sale: buyer n buys as "<n>" (beyond
	// maxPrebuiltIDs buyers, the id is formatted when the buyer comes).
	ids := make([]string, min(o.Buyers, maxPrebuiltIDs))
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}

	// What every buyer was told, and every sampled read, for the
	// linearizability check: a log per worker, and one for the sampler.
	var rec *history.Recorder
	hopts := env.Common.History
	// sharded-slots has no such log: its replies and reads each show some
	// shards, never the whole stock at one instant.
	if hopts.Records(o.Buyers) && strategy != impl.StockShardedSlots {
		rec = history.New(history.Options{Clients: conc, PerClient: int(perWorker) + 1, Observers: 1, PerObserver: maxSampledReads})
	}

	// The sampler reads the stock while the sale goes on.
	samplerCtx, stopSampler := context.WithCancel(ctx)
	sampled := newStockSampler(o.Stock, len(sr.keys))
	sampled.hist = rec.Log(conc)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sampled.run(samplerCtx, sr, o.SampleEvery)
	}()

	classify := env.Backend.Classify
	stats, runErr := env.Drive(ctx, bench.Config{
		Concurrency: conc,
		Requests:    o.Buyers,
		Seed:        env.Common.Seed,
	}, func(ctx context.Context, w *bench.Worker) error {
		q := o.QuantityMin
		if o.QuantityMax > o.QuantityMin {
			q += w.Rand.Int64N(o.QuantityMax - o.QuantityMin + 1)
		}
		t := &tallies[w.ID]
		var id string
		if w.Seq >= 0 && w.Seq < int64(len(ids)) {
			id = ids[w.Seq]
		} else {
			id = strconv.FormatInt(w.Seq, 10)
		}
		hl := rec.Log(w.ID)
		call := hl.Now()
		d, err := stock.Purchase(ctx, item, id, q)
		ret := hl.Now()
		t.retries += int64(d.Retries)
		t.maxRetries = max(t.maxRetries, int64(d.Retries))
		if err != nil {
			if class := classify(err); impl.MayHaveApplied(class) {
				t.lost = append(t.lost, purchaseNote{buyer: w.Seq, qty: q, canceled: class == impl.ClassCanceled})
				hl.Add(history.Entry{Kind: histcheck.StockPurchase, Call: call, Return: ret, In: q, In2: w.Seq, Unknown: true})
			}
			// A failure that surely did not apply told the buyer nothing
			// about the stock: it is no operation of the history.
			return err
		}
		hl.Add(history.Entry{Kind: histcheck.StockPurchase, Call: call, Return: ret, In: q, In2: w.Seq, OK: d.OK, Out: d.Remaining, Flag: d.Replayed})
		t.minReply = min(t.minReply, d.Remaining)
		if !d.OK {
			t.refused++
			if t.minRefusedQty < 0 || q < t.minRefusedQty {
				t.minRefusedQty = q
			}
			return nil
		}
		t.bought++
		t.units += q
		if d.Replayed {
			t.replayed++
		}
		t.told = append(t.told, purchaseNote{buyer: w.Seq, qty: q, seen: d.Remaining, unconfirmed: d.Unconfirmed})
		return nil
	})
	stopSampler()
	wg.Wait()
	if runErr != nil {
		return cell, runErr
	}
	stats.Fill(&cell)
	switch {
	case strategy == impl.StockShardedSlots && hopts.Mode != histcheck.ModeOff:
		cell.History = &result.History{Model: "stock counter", Result: result.HistoryNotChecked,
			Reason: "sharded-slots: the stock spans several slots (masters), so no reply or read shows all of it at one instant; the invariants are read back shard by shard"}
	case rec != nil:
		cell.History = histcheck.Check(ctx, histcheck.Stock(func(int64) int64 { return o.Stock }, func(int64) string { return item }),
			rec.Entries(), rec.Overflow(), hopts)
	default:
		cell.History = hopts.NotChecked("stock counter", o.Buyers)
	}

	j := oversellJudgement{o: o, strategy: strategy, sampled: sampled, errors: stats.ErrorCount(), retries: clientRetries(env.Backend), wait: waitSetting(env.Backend, strategy)}
	j.tally(tallies)
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	writeErr := writeOrders(vctx, env, j.told)
	readErr := j.readBack(vctx, env, sr)
	if readErr == nil {
		j.judge(&cell)
	} else {
		cell.Figures = j.clientFigures()
		cell.Summary = j.clientSummary()
	}
	// A failed sample leaves a gap in what was observed mid-sale, a failed
	// read-back leaves the verdict without the server's word, a failed
	// write leaves the order records short: either way the judgement is
	// incomplete, and the measured figures stand.
	//
	// Under a fault the plan asked for (a restart, a pause), samples the
	// server could not answer are the fault's own gap: the cell says how
	// many, and the final state still judges it.
	sampleErr := sampled.failure()
	if sampleErr != nil && env.Faulted && readErr == nil {
		cell.Summary += fmt.Sprintf("; %d of %d stock samples missed while the fault held", sampled.failed, sampled.failed+sampled.n)
		if cell.Figures != nil {
			cell.Figures["stock_samples_missed"] = float64(sampled.failed)
		}
		sampleErr = nil
	}
	if err := errors.Join(sampleErr, writeErr, readErr); err != nil {
		return cell, JudgementError(err)
	}
	return cell, nil
}

// writeOrders writes the order record of every purchase answered OK — what
// the buyers were told, next to the server's own purchases hash — with the
// admin client, in pipelines of orderWriteChunk: the hash prefix +
// "order:{b<buyer>}" with the fields buyer, qty and seen_remaining.
func writeOrders(ctx context.Context, env *Env, told []purchaseNote) error {
	for lo := 0; lo < len(told); lo += orderWriteChunk {
		chunk := told[lo:min(lo+orderWriteChunk, len(told))]
		_, err := env.Admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, n := range chunk {
				key := env.Keys.Tagged("order", "b"+strconv.FormatInt(n.buyer, 10))
				p.HSet(ctx, key, "buyer", n.buyer, "qty", n.qty, "seen_remaining", n.seen)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("write order records: %w", err)
		}
	}
	return nil
}

// clientRetries names the client's setting that re-sends a write whose
// reply was lost ("go-redis retries=3", "go-redis retries=library (3)"),
// or "" when the backend re-sends no write (its Settings say which
// commands it retries).
func clientRetries(be impl.Backend) string {
	set := be.Settings()
	if set[impl.SettingRetriedCommands] != impl.RetriedAll {
		return ""
	}
	lib := be.Name()
	if lib == impl.GoRedis {
		lib = "go-redis"
	}
	return fmt.Sprintf("%s retries=%s", lib, set[impl.SettingRetries])
}
