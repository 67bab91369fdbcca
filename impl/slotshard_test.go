package impl

import (
	"strings"
	"testing"
)

func TestKeySlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"123456789", 0x31C3 % ClusterSlots}, // the CRC16/XMODEM check value
		{"foo", 12182},                       // CLUSTER KEYSLOT foo
		{"{user1000}.following", int(crc16("user1000")) % ClusterSlots},
		{"foo{}{bar}", int(crc16("foo{}{bar}")) % ClusterSlots}, // an empty tag hashes the whole key
		{"foo{{bar}}zap", int(crc16("{bar")) % ClusterSlots},
		{"foo{bar}{zap}", int(crc16("bar")) % ClusterSlots},
		{"", 0},
	} {
		if got := KeySlot(tc.key); got != tc.want {
			t.Errorf("KeySlot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
}

func TestSlotShards(t *testing.T) {
	k := MustKeyspace("pb:t:")
	for _, n := range []int{1, 3, 8, 1024} {
		l := NewSlotShards(k, n)
		shards := l.Shards("a{b}:c")
		if len(shards) != n {
			t.Fatalf("%d shards, want %d", len(shards), n)
		}
		for i, sh := range shards {
			lo, hi := i*ClusterSlots/n, (i+1)*ClusterSlots/n
			if sh.Slot < lo || sh.Slot >= hi {
				t.Errorf("n=%d shard %d in slot %d, want [%d, %d)", n, i, sh.Slot, lo, hi)
			}
			for _, key := range []string{sh.Stock, sh.Purchases, sh.Holds} {
				if !strings.HasPrefix(key, "pb:t:") || KeySlot(key) != sh.Slot {
					t.Errorf("n=%d shard %d: key %q (slot %d), want under the prefix in slot %d", n, i, key, KeySlot(key), sh.Slot)
				}
			}
		}
		if again := l.Shards("a{b}:c"); again[n-1] != shards[n-1] {
			t.Errorf("n=%d: the cached layout differs: %v, %v", n, again[n-1], shards[n-1])
		}
	}
	if got := NewSlotShards(k, 8).StockKeys("x"); len(got) != 8 || got[0] == got[1] {
		t.Errorf("StockKeys = %q", got)
	}
}

func TestSlotShardStart(t *testing.T) {
	for _, id := range []string{"", "0", "17", "日本"} {
		a, b := SlotShardStart(id, 8), SlotShardStart(id, 8)
		if a != b || a < 0 || a >= 8 {
			t.Errorf("SlotShardStart(%q, 8) = %d, %d", id, a, b)
		}
	}
	if got := SlotShardStart("x", 0); got != 0 {
		t.Errorf("SlotShardStart(x, 0) = %d, want 0", got)
	}
}

func TestParseSlotRecord(t *testing.T) {
	for _, tc := range []struct {
		in         string
		taken, qty int64
		ok         bool
	}{
		{"1/5", 1, 5, true},
		{"5/5", 5, 5, true},
		{"5", 0, 0, false},
		{"0/5", 0, 0, false},
		{"a/5", 0, 0, false},
		{"1/", 0, 0, false},
	} {
		taken, qty, ok := ParseSlotRecord(tc.in)
		if taken != tc.taken || qty != tc.qty || ok != tc.ok {
			t.Errorf("ParseSlotRecord(%q) = %d, %d, %v; want %d, %d, %v", tc.in, taken, qty, ok, tc.taken, tc.qty, tc.ok)
		}
	}
}
