package impl

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ClusterSlots is the number of hash slots of a Redis Cluster.
const ClusterSlots = 16384

// KeySlot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of its
// hash tag when it has one (the part between the first '{' and the next
// '}', when not empty), else of the whole key, modulo 16384 — as the
// cluster specification defines it.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % ClusterSlots
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), bit by bit:
// the cluster's key hash. Keys are short, and the sharded-slots layout
// caches what it computes.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// SlotShard names the keys of one shard of the sharded-slots strategy:
// all three share the shard's own hash tag, so one script may touch them
// together, and different shards of an item hash to different slots.
type SlotShard struct {
	// Stock is the shard's units (a string holding an integer).
	Stock string
	// Purchases is the hash of the purchases that took units from this
	// shard: purchase id -> "<units taken here>/<the purchase's quantity>".
	Purchases string
	// Holds is the hash of the walks that took units here and have not
	// finished yet: walk token -> units held.
	Holds string
	// Slot is the shard's cluster slot.
	Slot int
}

// SlotShards computes the keys of the sharded-slots stock strategy: item's
// stock split over n shards whose hash tags differ, chosen so that shard i
// of n hashes into the i-th n-th of the slot space (slots
// [i*16384/n, (i+1)*16384/n)). Shards therefore never share a slot, and
// on a cluster whose masters own contiguous, equal slot ranges (what
// `redis-cli --cluster create` makes) they spread evenly over the masters.
// The tag of shard i is "<escaped item>:<i>:<salt>", the salt the smallest
// number that puts it in its range (the escaped item holds no ':', so tags
// of different items or shards never coincide). A SlotShards is safe for
// concurrent use; it caches the shards of up to slotShardCacheItems items.
type SlotShards struct {
	keys   Keyspace
	n      int
	cache  sync.Map // item -> []SlotShard
	cached atomic.Int64
}

// slotShardCacheItems bounds the items whose shard keys a SlotShards keeps.
const slotShardCacheItems = 1 << 16

// NewSlotShards returns the layout of n shards (n >= 1) under k.
func NewSlotShards(k Keyspace, n int) *SlotShards {
	return &SlotShards{keys: k, n: max(n, 1)}
}

// N returns the number of shards.
func (l *SlotShards) N() int { return l.n }

// Shards returns item's n shards, shard 0 first. The slice is shared:
// callers must not modify it.
func (l *SlotShards) Shards(item string) []SlotShard {
	if v, ok := l.cache.Load(item); ok {
		return v.([]SlotShard)
	}
	out := make([]SlotShard, l.n)
	esc := Escape(item)
	for i := range out {
		out[i] = l.shard(esc, i)
	}
	if l.cached.Load() < slotShardCacheItems {
		if _, loaded := l.cache.LoadOrStore(item, out); !loaded {
			l.cached.Add(1)
		}
	}
	return out
}

// StockKeys returns the stock keys of item's shards, shard 0 first.
func (l *SlotShards) StockKeys(item string) []string {
	sh := l.Shards(item)
	keys := make([]string, len(sh))
	for i, s := range sh {
		keys[i] = s.Stock
	}
	return keys
}

// slotLockKey is an item's walk lock (SlotWalk), from its shards: a
// string holding the token of the walk splitting a purchase over the
// shards, in shard 0's slot.
func slotLockKey(shards []SlotShard) string { return shards[0].Stock + ":walk" }

// shard finds shard i's tag: the first salt whose slot falls in the
// shard's range. Each range holds at least 16 slots (n <= 1024), so a
// salt is found after about n tries; the bound is never reached in
// practice, and past it the last tag tried is kept (another slot, still
// a tag of its own).
func (l *SlotShards) shard(escItem string, i int) SlotShard {
	lo, hi := i*ClusterSlots/l.n, (i+1)*ClusterSlots/l.n
	base := escItem + ":" + strconv.Itoa(i) + ":"
	var tag string
	var slot int
	for salt := 0; salt < 1<<20; salt++ {
		tag = base + strconv.Itoa(salt)
		slot = int(crc16(tag)) % ClusterSlots
		if slot >= lo && slot < hi {
			break
		}
	}
	p := l.keys.Prefix()
	return SlotShard{
		Stock:     p + "stock:{" + tag + "}",
		Purchases: p + "purchases:{" + tag + "}",
		Holds:     p + "stock:{" + tag + "}:holds",
		Slot:      slot,
	}
}

// ParseSlotRecord parses a sharded-slots purchase record
// "<units taken here>/<quantity>".
func ParseSlotRecord(v string) (taken, qty int64, ok bool) {
	a, b, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	taken, err1 := strconv.ParseInt(a, 10, 64)
	qty, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || taken <= 0 || qty <= 0 {
		return 0, 0, false
	}
	return taken, qty, true
}
