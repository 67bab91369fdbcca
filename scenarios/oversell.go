package scenarios

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

func init() { Register(func() Scenario { return newOversell() }) }

// Oversell is the flash sale: S units, B buyers each wanting q units, C at
// a time. The seed's read-compare-write deduction sells more than there is.
//
// One measured operation is one buyer's Stock.Deduct through the backend
// under test, and nothing else. A purchase answered OK is recorded as an
// order: the buyer keeps the record in its worker's buffer, and the records
// are written after the sale with the admin client, in pipelines. The stock
// contract carries no purchase identity that a deduction could record in
// the same atomic step (and the naive strategies have no atomic step to
// record it in), so an order record is, as it always was, what the buyer
// was told; it used to be written by the buyer right after the answer,
// inside the timed operation. The verdict reads the records and the stock
// back from the server: "units sold == initial − final stock" holds what
// the buyers were told against what the server's stock lost, and "order
// records == successful purchases" checks that every purchase was
// recorded.
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
		{Name: impl.StockLua, Expect: result.Hold, Note: "one check-and-deduct script"},
		{Name: impl.StockSharded, Expect: result.Hold, Note: "stock over hash-tagged shards, all-shard fallback"},
	}
}

// Flags implements Scenario.
func (o *Oversell) Flags(fs *pflag.FlagSet) {
	fs.Int64Var(&o.Stock, "stock", o.Stock, "units in stock at the start")
	fs.Int64Var(&o.Buyers, "buyers", o.Buyers, "number of buyers (one purchase attempt each)")
	fs.StringVar(&o.quantity, "quantity", o.quantity, "units each buyer wants: N, or MIN-MAX drawn per buyer")
	fs.DurationVar(&o.Think, "think", o.Think, "naive only: pause between the read and the write (widens the race)")
	fs.IntVar(&o.Shards, "shards", o.Shards, "sharded only: number of stock shards")
	fs.IntVar(&o.MaxRetries, "max-retries", o.MaxRetries, "watch only: optimistic retries before giving up")
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
	minReply               int64 // lowest stock value a reply showed
	retries, maxRetries    int64
	minRefusedQty          int64
	orders                 []orderRecord // purchases answered OK, to record
	_                      [64]byte
}

// orderRecord is one purchase the backend answered OK: the order record a
// buyer writes once the sale is over.
type orderRecord struct {
	buyer, qty, seenRemaining int64
}

// orderWriteChunk is how many order records one pipeline writes.
const orderWriteChunk = 500

const item = "sku-1"

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
	stockKeys := []string{impl.StockKey(env.Keys, item)}
	if strategy == impl.StockSharded {
		stockKeys = stockKeys[:0]
		for i := 0; i < o.Shards; i++ {
			stockKeys = append(stockKeys, impl.StockShardKey(env.Keys, item, i))
		}
	}
	readStock := func(ctx context.Context) (int64, error) {
		vals, err := env.Admin.MGet(ctx, stockKeys...).Result()
		if err != nil {
			return 0, err
		}
		var sum int64
		for _, v := range vals {
			if v == nil {
				continue
			}
			n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("stock key holds %q: %w", v, err)
			}
			sum += n
		}
		return sum, nil
	}

	conc := env.Common.Concurrency
	if conc <= 0 {
		conc = 50
	}
	tallies := make([]buyerTally, conc)
	perWorker := o.Buyers/int64(conc) + 1 // a fixed count is split evenly
	for i := range tallies {
		tallies[i].minReply = o.Stock
		tallies[i].minRefusedQty = -1
		tallies[i].orders = make([]orderRecord, 0, min(perWorker, o.Stock+1))
	}

	// The sampler reads the stock while the sale goes on.
	samplerCtx, stopSampler := context.WithCancel(ctx)
	var sampled struct {
		min, n int64
		err    error
	}
	sampled.min = o.Stock
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(o.SampleEvery)
		defer t.Stop()
		for {
			v, err := readStock(samplerCtx)
			if err != nil {
				if samplerCtx.Err() == nil {
					sampled.err = err
				}
				return
			}
			sampled.n++
			sampled.min = min(sampled.min, v)
			select {
			case <-samplerCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

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
		d, err := stock.Deduct(ctx, item, q)
		t.retries += int64(d.Retries)
		t.maxRetries = max(t.maxRetries, int64(d.Retries))
		if err != nil {
			return err
		}
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
		t.orders = append(t.orders, orderRecord{buyer: w.Seq, qty: q, seenRemaining: d.Remaining})
		return nil
	})
	stopSampler()
	wg.Wait()
	if runErr != nil {
		return cell, runErr
	}
	if sampled.err != nil {
		return cell, fmt.Errorf("stock sampler: %w", sampled.err)
	}
	stats.Fill(&cell)

	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := o.writeOrders(vctx, env, tallies); err != nil {
		return cell, err
	}

	// Read the server's state back.
	final, err := readStock(vctx)
	if err != nil {
		return cell, fmt.Errorf("read final stock: %w", err)
	}
	orders, soldUnits, err := o.readOrders(vctx, env)
	if err != nil {
		return cell, err
	}

	var bought, refused, clientUnits, retries, maxRetries int64
	minReply, minRefusedQty := o.Stock, int64(-1)
	for _, t := range tallies {
		bought += t.bought
		refused += t.refused
		clientUnits += t.units
		retries += t.retries
		maxRetries = max(maxRetries, t.maxRetries)
		minReply = min(minReply, t.minReply)
		if t.minRefusedQty >= 0 && (minRefusedQty < 0 || t.minRefusedQty < minRefusedQty) {
			minRefusedQty = t.minRefusedQty
		}
	}
	minSeen := min(sampled.min, minReply, final)
	demand := o.Buyers * o.QuantityMin
	cell.Figures = map[string]float64{
		"stock_initial":      float64(o.Stock),
		"stock_final":        float64(final),
		"stock_min_observed": float64(minSeen),
		"orders":             float64(orders),
		"units_sold":         float64(soldUnits),
		"purchases_ok":       float64(bought),
		"purchases_refused":  float64(refused),
		"stock_samples":      float64(sampled.n),
		"watch_retries":      float64(retries),
		"watch_retries_max":  float64(maxRetries),
		"oversold_units":     float64(max(0, soldUnits-o.Stock)),
		"lost_stock_updates": float64(soldUnits - (o.Stock - final)),
		"unsold_with_demand": 0,
		"errors":             float64(stats.ErrorCount()),
		"buyers":             float64(o.Buyers),
		"quantity_min":       float64(o.QuantityMin),
		"quantity_max":       float64(o.QuantityMax),
	}
	cell.Invariants = []result.Invariant{
		Check("final stock >= 0", final >= 0, "final stock %d", final),
		Check("stock never observed negative", minSeen >= 0,
			"lowest stock seen %d (%d samples while the sale ran, and every deduction's reply)", minSeen, sampled.n),
		Check("units sold == initial - final stock", soldUnits == o.Stock-final,
			"orders hold %d units; stock went from %d to %d (%d taken)", soldUnits, o.Stock, final, o.Stock-final),
		Check("order records == successful purchases", orders == bought,
			"%d order records, %d purchases answered OK", orders, bought),
		Check("units sold <= initial stock", soldUnits <= o.Stock,
			"sold %d units of %d", soldUnits, o.Stock),
	}
	if demand >= o.Stock {
		// Every buyer came; a unit left over that a refused buyer could
		// have taken was stranded.
		stranded := minRefusedQty > 0 && final >= minRefusedQty
		if stranded {
			cell.Figures["unsold_with_demand"] = float64(final)
		}
		cell.Invariants = append(cell.Invariants, Check("nothing sellable left unsold", !stranded,
			"final stock %d; smallest refused purchase %d units", final, max(minRefusedQty, 0)))
	}
	switch {
	case soldUnits > o.Stock:
		cell.Summary = fmt.Sprintf("sold %d units of %d — oversold by %d", soldUnits, o.Stock, soldUnits-o.Stock)
	case soldUnits != o.Stock-final:
		cell.Summary = fmt.Sprintf("sold %d units but stock fell by %d — %d lost updates", soldUnits, o.Stock-final, soldUnits-(o.Stock-final))
	case minSeen < 0:
		cell.Summary = fmt.Sprintf("sold %d units of %d, final stock %d, but stock read %d mid-sale", soldUnits, o.Stock, final, minSeen)
	default:
		cell.Summary = fmt.Sprintf("sold %d units of %d in %d orders, final stock %d", soldUnits, o.Stock, orders, final)
	}
	if retries > 0 {
		cell.Summary += fmt.Sprintf("; %d watch retries (max %d per purchase)", retries, maxRetries)
	}
	return cell, nil
}

// writeOrders writes every buyer's order records with the admin client, in
// pipelines of orderWriteChunk: the hash prefix + "order:{b<buyer>}" with
// the fields buyer, qty and seen_remaining.
func (o *Oversell) writeOrders(ctx context.Context, env *Env, tallies []buyerTally) error {
	var recs []orderRecord
	for _, t := range tallies {
		recs = append(recs, t.orders...)
	}
	for lo := 0; lo < len(recs); lo += orderWriteChunk {
		chunk := recs[lo:min(lo+orderWriteChunk, len(recs))]
		_, err := env.Admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, r := range chunk {
				key := env.Keys.Tagged("order", "b"+strconv.FormatInt(r.buyer, 10))
				p.HSet(ctx, key, "buyer", r.buyer, "qty", r.qty, "seen_remaining", r.seenRemaining)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("write order records: %w", err)
		}
	}
	return nil
}

// readOrders counts the order records of the run and the units they hold.
func (o *Oversell) readOrders(ctx context.Context, env *Env) (orders, units int64, err error) {
	pattern := env.Keys.Prefix() + "order:*"
	iter := env.Admin.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		qty, err := env.Admin.HGet(ctx, iter.Val(), "qty").Int64()
		if err != nil {
			return 0, 0, fmt.Errorf("read order %s: %w", iter.Val(), err)
		}
		orders++
		units += qty
	}
	if err := iter.Err(); err != nil {
		return 0, 0, fmt.Errorf("scan orders: %w", err)
	}
	return orders, units, nil
}
