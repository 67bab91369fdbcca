package impltest

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// testSlotsLayout: sharded-slots' shards each hash to a slot of their own,
// in their n-th of the slot space (the server agrees, on a cluster, and
// the shards land on every master); Set spreads the units, Get and
// Restore add them up.
func testSlotsLayout(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	layout := impl.NewSlotShards(ks, testShards)
	shards := layout.Shards("i")
	seen := map[int]bool{}
	for i, sh := range shards {
		lo, hi := i*impl.ClusterSlots/testShards, (i+1)*impl.ClusterSlots/testShards
		if sh.Slot < lo || sh.Slot >= hi || seen[sh.Slot] {
			t.Errorf("shard %d in slot %d, want a slot of its own in [%d, %d)", i, sh.Slot, lo, hi)
		}
		seen[sh.Slot] = true
		for _, k := range []string{sh.Stock, sh.Purchases, sh.Holds} {
			if got := impl.KeySlot(k); got != sh.Slot {
				t.Errorf("shard %d: key %q in slot %d, want %d", i, k, got, sh.Slot)
			}
		}
	}
	if cc, ok := c.env.Admin.(*redis.ClusterClient); ok {
		owners := map[string]bool{}
		ranges, err := cc.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatalf("CLUSTER SLOTS: %v", err)
		}
		for _, sh := range shards {
			slot, err := cc.ClusterKeySlot(ctx, sh.Stock).Result()
			if err != nil || int(slot) != sh.Slot {
				t.Errorf("CLUSTER KEYSLOT %q = %d, %v; paybench computed %d", sh.Stock, slot, err, sh.Slot)
			}
			for _, r := range ranges {
				if sh.Slot >= int(r.Start) && sh.Slot <= int(r.End) && len(r.Nodes) > 0 {
					owners[r.Nodes[0].Addr] = true
				}
			}
		}
		masters := map[string]bool{}
		for _, r := range ranges {
			if len(r.Nodes) > 0 {
				masters[r.Nodes[0].Addr] = true
			}
		}
		if len(owners) != len(masters) {
			t.Errorf("%d shards on %d of the %d masters, want all", testShards, len(owners), len(masters))
		}
	}
	// Odd items never share a shard's tag.
	tags := map[int]map[string]bool{}
	for _, item := range oddItems {
		for i, sh := range layout.Shards(item) {
			if tags[i] == nil {
				tags[i] = map[string]bool{}
			}
			if tags[i][sh.Stock] {
				t.Errorf("item %q shard %d shares key %q with another item", item, i, sh.Stock)
			}
			tags[i][sh.Stock] = true
		}
	}

	plain := impl.StockKey(ks, "i")
	if err := c.env.Admin.Set(ctx, plain, 99, 0).Err(); err != nil {
		t.Fatal(err)
	}
	mustSet(t, ctx, s, "i", 100)
	if got := slotValues(t, c, ks, "i"); !slices.Equal(got, []int64{13, 13, 13, 13, 12, 12, 12, 12}) {
		t.Errorf("Set(100): shards hold %v, want 13×4 then 12×4", got)
	}
	if n, err := c.env.Admin.Exists(ctx, plain).Result(); err != nil || n != 0 {
		t.Errorf("Set left the plain key %q (exists=%d, %v)", plain, n, err)
	}
	wantGet(t, ctx, s, "i", 100)
	if n, err := s.Restore(ctx, "i", 2); err != nil || n != 102 {
		t.Errorf("Restore(2) = %d, %v; want 102", n, err)
	}
}

// testSlotsWalkAcross: a purchase no single shard covers takes from
// several, one shard at a time, and is recorded on each with what it took
// there; one the shards cannot cover is refused with everything given
// back and nothing recorded; a re-sent purchase takes nothing again.
func testSlotsWalkAcross(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", testShards) // one unit on each shard
	wantPurchase(t, ctx, s, "i", "a", 5, impl.Deduction{OK: true, Remaining: testShards - 5})
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 5})
	wantRaw(t, ctx, c, ks, "i", testShards-5)
	wantPurchase(t, ctx, s, "i", "b", testShards-5+1, impl.Deduction{Remaining: testShards - 5})
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 5})
	wantRaw(t, ctx, c, ks, "i", testShards-5)
	wantPurchase(t, ctx, s, "i", "a", 5, impl.Deduction{OK: true, Remaining: testShards - 5, Replayed: true})
	wantRaw(t, ctx, c, ks, "i", testShards-5)
	wantDeduct(t, ctx, s, "i", testShards-5, impl.Deduction{OK: true, Remaining: 0})
	wantDeduct(t, ctx, s, "i", 1, impl.Deduction{Remaining: 0})
	for i, v := range slotValues(t, c, ks, "i") {
		if v != 0 {
			t.Errorf("shard %d holds %d, want 0", i, v)
		}
	}
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{"a": 5}) // and no holds left
}

// testSlotsContention: a walk that runs short while another walk holds
// units starts again, at most MaxRetries times, then fails with
// ErrContention, having given back what it took; once nothing is held, it
// is refused.
func testSlotsContention(t *testing.T, c stockCase) {
	ctx := testContext(t)
	const retries = 2
	s, ks := c.stock(t, func(o *impl.StockOptions) { o.MaxRetries = retries })
	mustSet(t, ctx, s, "i", 2) // shards 1, 1, 0, …
	other := impl.NewSlotShards(ks, testShards).Shards("i")[testShards-1]
	if err := c.env.Admin.HSet(ctx, other.Holds, "another-walk", 3).Err(); err != nil {
		t.Fatal(err)
	}
	d, err := s.Purchase(ctx, "i", "x", 3)
	if !errors.Is(err, impl.ErrContention) || d.OK || d.Retries != retries {
		t.Errorf("Purchase(3 of 2) while 3 units are held elsewhere = %+v, %v; want ErrContention after %d retries", d, err, retries)
	}
	wantRaw(t, ctx, c, ks, "i", 2)
	if err := c.env.Admin.Del(ctx, other.Holds).Err(); err != nil {
		t.Fatal(err)
	}
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{})
	wantPurchase(t, ctx, s, "i", "x", 3, impl.Deduction{Remaining: 2})
	wantRaw(t, ctx, c, ks, "i", 2)
	wantPurchases(t, ctx, c, ks, "i", map[string]int64{})
}

// slotValues reads item's sharded-slots shards through the admin client;
// missing is 0.
func slotValues(t *testing.T, c stockCase, ks impl.Keyspace, item string) []int64 {
	t.Helper()
	vals, err := getAll(testContext(t), c.env.Admin, impl.NewSlotShards(ks, testShards).StockKeys(item))
	if err != nil {
		t.Fatalf("GET shards: %v", err)
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		if v != nil {
			out[i], _ = strconv.ParseInt(v.(string), 10, 64)
		}
	}
	return out
}
