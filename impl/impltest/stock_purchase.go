package impltest

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paybench/paybench/impl"
)

// idempotentStrategies record a purchase in the same atomic step as its
// deduction and answer a recorded id from the record.
var idempotentStrategies = []string{impl.StockWatch, impl.StockIdempotent, impl.StockSharded, impl.StockShardedSlots}

// oddIDs are purchase ids a careless script or key schema would break on.
var oddIDs = []string{"b1", "{", "a{b}:c d", "%", "日本", "\x00\n", strings.Repeat("x", impl.MaxPurchaseID)}

// purchases reads item's purchases hash through the admin client: id ->
// units. For sharded-slots, every shard's hash, each purchase's units
// added up over the shards it took from.
func purchases(t *testing.T, ctx context.Context, c stockCase, ks impl.Keyspace, item string) map[string]int64 {
	t.Helper()
	if c.strategy == impl.StockShardedSlots {
		return slotPurchases(t, ctx, c, ks, item)
	}
	raw, err := c.env.Admin.HGetAll(ctx, impl.PurchasesKey(ks, item)).Result()
	if err != nil {
		t.Fatalf("HGETALL purchases: %v", err)
	}
	out := make(map[string]int64, len(raw))
	for id, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("purchase %q holds %q, not an integer", id, v)
		}
		out[id] = n
	}
	return out
}

// slotPurchases reads every sharded-slots shard's purchases of item and
// adds each purchase's units up; every record must name the same
// quantity on every shard, and the shards' holds must be empty (every
// walk the test made has finished).
func slotPurchases(t *testing.T, ctx context.Context, c stockCase, ks impl.Keyspace, item string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	qtys := map[string]int64{}
	for i, sh := range impl.NewSlotShards(ks, testShards).Shards(item) {
		raw, err := c.env.Admin.HGetAll(ctx, sh.Purchases).Result()
		if err != nil {
			t.Fatalf("HGETALL purchases of shard %d: %v", i, err)
		}
		for id, v := range raw {
			taken, qty, ok := impl.ParseSlotRecord(v)
			if !ok {
				t.Fatalf("shard %d: purchase %q holds %q, not <taken>/<quantity>", i, id, v)
			}
			if q, seen := qtys[id]; seen && q != qty {
				t.Errorf("purchase %q recorded with quantity %d and %d", id, q, qty)
			}
			qtys[id] = qty
			out[id] += taken
		}
		if holds, err := c.env.Admin.HGetAll(ctx, sh.Holds).Result(); err != nil || len(holds) != 0 {
			t.Errorf("shard %d holds %v (%v), want none: a walk did not finish", i, holds, err)
		}
	}
	return out
}

func wantPurchase(t *testing.T, ctx context.Context, s impl.Stock, item, id string, qty int64, want impl.Deduction) {
	t.Helper()
	got, err := s.Purchase(ctx, item, id, qty)
	got.Retries = 0 // not asserted: it depends on timing
	if err != nil || !sameDeduction(s, got, want) {
		t.Errorf("Purchase(%q, %.20q, %d) = %+v, %v; want %+v, nil", item, id, qty, got, err, want)
	}
}

func wantPurchases(t *testing.T, ctx context.Context, c stockCase, ks impl.Keyspace, item string, want map[string]int64) {
	t.Helper()
	if got := purchases(t, ctx, c, ks, item); !maps.Equal(got, want) {
		t.Errorf("purchases of %q: got %v, want %v", item, got, want)
	}
}

// testPurchaseRecorded: a purchase's record exists if and only if its
// units were taken, for every strategy.
func testPurchaseRecorded(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)
	wantPurchase(t, ctx, s, "i", "a", 3, impl.Deduction{OK: true, Remaining: 7})
	refused := impl.Deduction{Remaining: 7}
	if c.strategy == impl.StockDecr {
		refused.Remaining = -1 // the DECRBY reply, compensated afterwards
	}
	wantPurchase(t, ctx, s, "i", "b", 8, refused)
	wantPurchase(t, ctx, s, "i", "c", 7, impl.Deduction{OK: true, Remaining: 0})
	wantGet(t, ctx, s, "i", 0)
	wantRaw(t, ctx, c, ks, "i", 0)
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 3, "c": 7})

	// A refused purchase of a never-set item records nothing either.
	d, err := s.Purchase(ctx, "never-set", "x", 1)
	if err != nil || d.OK {
		t.Errorf("Purchase(never set) = %+v, %v; want refused, nil", d, err)
	}
	wantPurchases(t, ctx, c, ks, "never-set", map[string]int64{})

	// Odd ids are hash fields as they are; odd items keep one hash each.
	want := map[string]int64{}
	mustSet(t, ctx, s, "odd", int64(len(oddIDs)))
	for i, id := range oddIDs {
		wantPurchase(t, ctx, s, "odd", id, 1, impl.Deduction{OK: true, Remaining: int64(len(oddIDs) - i - 1)})
		want[id] = 1
	}
	wantPurchases(t, ctx, c, ks, "odd", want)
	for _, item := range oddItems {
		mustSet(t, ctx, s, item, 1)
		wantPurchase(t, ctx, s, item, "p", 1, impl.Deduction{OK: true, Remaining: 0})
		wantPurchases(t, ctx, c, ks, item, map[string]int64{"p": 1})
	}
}

func testPurchaseInvalid(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)
	closed, err := c.open(ctx, c.env.Conn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	cs, err := closed.(impl.StockBackend).Stock(c.strategy, impl.StockOptions{Keys: ks, Shards: testShards})
	if err != nil {
		t.Fatalf("Stock: %v", err)
	}
	if err := closed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, tc := range []struct {
		id   string
		qty  int64
		want error
	}{
		{"a", 0, impl.ErrInvalidQuantity},
		{"a", impl.MaxQuantity + 1, impl.ErrInvalidQuantity},
		{"", 1, impl.ErrInvalidID},
		{strings.Repeat("x", impl.MaxPurchaseID+1), 1, impl.ErrInvalidID},
	} {
		for _, st := range []impl.Stock{s, cs} { // cs: no Redis call may be made
			if _, err := st.Purchase(ctx, "i", tc.id, tc.qty); !errors.Is(err, tc.want) {
				t.Errorf("Purchase(id of %d bytes, %d) error = %v, want %v", len(tc.id), tc.qty, err, tc.want)
			}
		}
	}
	wantGet(t, ctx, s, "i", 10)
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{})
}

func testPurchaseCanceled(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 5)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if d, err := s.Purchase(canceled, "i", "a", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Purchase with a canceled context = %+v, %v; want an error wrapping context.Canceled", d, err)
	}
	wantGet(t, ctx, s, "i", 5)
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{})
}

// testPurchaseIdempotent: a purchase re-sent with the same id takes nothing
// again and answers the recorded outcome, whatever quantity it asks.
func testPurchaseIdempotent(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)
	wantPurchase(t, ctx, s, "i", "a", 3, impl.Deduction{OK: true, Remaining: 7})
	wantPurchase(t, ctx, s, "i", "a", 3, impl.Deduction{OK: true, Remaining: 7, Replayed: true})
	wantPurchase(t, ctx, s, "i", "a", 5, impl.Deduction{OK: true, Remaining: 7, Replayed: true})
	wantPurchase(t, ctx, s, "i", "b", 7, impl.Deduction{OK: true, Remaining: 0})
	// Recorded, so answered OK even with the stock gone.
	wantPurchase(t, ctx, s, "i", "b", 7, impl.Deduction{OK: true, Remaining: 0, Replayed: true})
	wantGet(t, ctx, s, "i", 0)
	wantRaw(t, ctx, c, ks, "i", 0)
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 3, "b": 7})
	// A refused id was not recorded: once stock is back, it may buy.
	wantPurchase(t, ctx, s, "i", "c", 1, impl.Deduction{OK: false, Remaining: 0})
	if _, err := s.Restore(ctx, "i", 1); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	wantPurchase(t, ctx, s, "i", "c", 1, impl.Deduction{OK: true, Remaining: 0})
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 3, "b": 7, "c": 1})
}

// testPurchaseSameIDConcurrently: the same purchase sent by many clients at
// once is taken exactly once.
func testPurchaseSameIDConcurrently(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	const stock = 100
	mustSet(t, ctx, s, "hot", stock)
	var r result
	var replayed, fresh atomic.Int64
	hammer(workers, perWorker, func() bool {
		d, err := s.Purchase(ctx, "hot", "same", 2)
		r.record(d, err)
		if err == nil && d.OK {
			if d.Replayed {
				replayed.Add(1)
			} else {
				fresh.Add(1)
			}
		}
		return true
	})
	if r.errs.Load() != 0 {
		t.Errorf("%d purchases failed, first: %v", r.errs.Load(), r.firstErr)
	}
	if fresh.Load() != 1 || replayed.Load() != workers*perWorker-1 {
		t.Errorf("%d sends of one purchase: %d took the units, %d were answered from the record; want 1 and %d",
			workers*perWorker, fresh.Load(), replayed.Load(), workers*perWorker-1)
	}
	wantGet(t, ctx, s, "hot", stock-2)
	wantRaw(t, ctx, c, ks, "hot", stock-2)
	wantPurchases(t, ctx, c, ks, "hot", map[string]int64{"same": 2})
}

// testPurchaseNotIdempotent pins what naive, decr and lua are: no look-up
// of the id first, so a re-sent purchase takes its units again (and the
// record keeps one entry: the stock fell by more than the recorded units).
func testPurchaseNotIdempotent(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)
	wantPurchase(t, ctx, s, "i", "a", 3, impl.Deduction{OK: true, Remaining: 7})
	wantPurchase(t, ctx, s, "i", "a", 3, impl.Deduction{OK: true, Remaining: 4})
	wantGet(t, ctx, s, "i", 4)
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 3})
}

// testPurchaseSameIDDeductsAgain: the same purchase sent by many clients at
// once through the plain lua script is taken once per send while the stock
// lasts; the record keeps one entry.
func testPurchaseSameIDDeductsAgain(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	const stock, qty = 100, 2
	mustSet(t, ctx, s, "hot", stock)
	var r result
	var replayed atomic.Int64
	hammer(workers, perWorker, func() bool {
		d, err := s.Purchase(ctx, "hot", "same", qty)
		r.record(d, err)
		if d.Replayed {
			replayed.Add(1)
		}
		return true
	})
	if r.errs.Load() != 0 {
		t.Errorf("%d purchases failed, first: %v", r.errs.Load(), r.firstErr)
	}
	if r.ok.Load() != stock/qty || r.refused.Load() != workers*perWorker-stock/qty || replayed.Load() != 0 {
		t.Errorf("%d sends of one purchase: %d took units, %d refused, %d replayed; want %d, %d, 0",
			workers*perWorker, r.ok.Load(), r.refused.Load(), replayed.Load(), stock/qty, workers*perWorker-stock/qty)
	}
	wantGet(t, ctx, s, "hot", 0)
	wantRaw(t, ctx, c, ks, "hot", 0)
	wantPurchases(t, ctx, c, ks, "hot", map[string]int64{"same": qty})
}

// testConcurrentPurchases: distinct buyers racing for the stock; every
// purchase answered OK is recorded, nothing else is, and the records add
// up to what the stock lost.
func testConcurrentPurchases(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	stock := int64(workers*perWorker - shortfall)
	mustSet(t, ctx, s, "hot", stock)
	var r result
	var next atomic.Int64
	okIDs := make(chan string, workers*perWorker)
	hammer(workers, perWorker, func() bool {
		id := "buyer-" + strconv.FormatInt(next.Add(1), 10)
		d, err := s.Purchase(ctx, "hot", id, 1)
		r.record(d, err)
		if err == nil && d.OK {
			okIDs <- id
		}
		return true
	})
	close(okIDs)
	if r.errs.Load() != 0 {
		t.Errorf("%d purchases failed, first: %v", r.errs.Load(), r.firstErr)
	}
	if r.ok.Load() != stock || r.refused.Load() != shortfall {
		t.Errorf("%d purchases from %d: %d succeeded, %d refused; want %d and %d",
			workers*perWorker, stock, r.ok.Load(), r.refused.Load(), stock, shortfall)
	}
	want := map[string]int64{}
	for id := range okIDs {
		want[id] = 1
	}
	wantPurchases(t, ctx, c, ks, "hot", want)
	wantGet(t, ctx, s, "hot", 0)
	wantRaw(t, ctx, c, ks, "hot", 0)
}

func testPurchaseScriptFlush(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)
	wantPurchase(t, ctx, s, "i", "a", 1, impl.Deduction{OK: true, Remaining: 9})
	if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	wantPurchase(t, ctx, s, "i", "b", 2, impl.Deduction{OK: true, Remaining: 7})
	if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	// The re-sent "a": answered from its record, or (lua) taken again.
	again, left := impl.Deduction{OK: true, Remaining: 7, Replayed: true}, int64(7)
	if c.strategy == impl.StockLua {
		again, left = impl.Deduction{OK: true, Remaining: 6}, 6
	}
	wantPurchase(t, ctx, s, "i", "a", 1, again)
	wantRaw(t, ctx, c, ks, "i", left)
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 1, "b": 2})
}

// testShardedPurchaseAcross: a purchase no single shard can serve takes
// from several, in one script, and is recorded once.
func testShardedPurchaseAcross(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", testShards) // one unit on each shard
	wantPurchase(t, ctx, s, "i", "a", 5, impl.Deduction{OK: true, Remaining: testShards - 5})
	wantPurchase(t, ctx, s, "i", "b", testShards-5+1, impl.Deduction{Remaining: testShards - 5})
	wantPurchase(t, ctx, s, "i", "c", testShards-5, impl.Deduction{OK: true, Remaining: 0})
	for i, v := range shardValues(t, ctx, c.env.Admin, ks, "i", testShards) {
		if v != 0 {
			t.Errorf("shard %d holds %d, want 0", i, v)
		}
	}
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 5, "c": testShards - 5})
}
