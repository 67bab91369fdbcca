package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxShards bounds Shard.Count.
const MaxShards = 10_000

// ErrBadShard is wrapped by ParseShard's errors.
var ErrBadShard = errors.New("bad shard")

// Shard is one load generator's part of a load that Count generators share,
// as k6's execution segments split one: generator Index takes operations
// Index, Index+Count, Index+2·Count, ... of the full schedule (so the
// generators together run exactly the full schedule, at any rate or
// stages), its share of a fixed count, and its share of the keys. The zero
// Shard, like 0/1, is the whole load.
type Shard struct {
	Index, Count int
}

// ParseShard parses "I/N" (0 <= I < N <= MaxShards).
func ParseShard(s string) (Shard, error) {
	is, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(is))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil || n < 1 || n > MaxShards || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("%w %q: want I/N with 0 <= I < N <= %d, such as 0/4", ErrBadShard, s, MaxShards)
	}
	return Shard{Index: i, Count: n}, nil
}

// Split reports whether the shard is a strict part of the load (Count > 1).
func (s Shard) Split() bool { return s.Count > 1 }

// String returns "I/N".
func (s Shard) String() string { return strconv.Itoa(s.Index) + "/" + strconv.Itoa(max(s.Count, 1)) }

// Pacer returns the shard's part of p's schedule (p itself for the whole
// load).
func (s Shard) Pacer(p Pacer) Pacer {
	if p == nil || !s.Split() {
		return p
	}
	return ShardPacer{P: p, Index: uint64(s.Index), Count: uint64(s.Count)}
}

// Requests returns the shard's part of a count of n operations: n/Count,
// the first n%Count shards one more.
func (s Shard) Requests(n int64) int64 {
	if !s.Split() || n <= 0 {
		return n
	}
	c, i := int64(s.Count), int64(s.Index)
	part := n / c
	if i < n%c {
		part++
	}
	return part
}

// Keys returns how many of n keys the shard owns: its share as Requests
// splits a count, at least 1 (with fewer keys than shards, each generator
// gets one key of its own).
func (s Shard) Keys(n int) int {
	return max(int(s.Requests(int64(n))), 1)
}

// ShardPacer is generator Index's part of P's schedule when Count
// generators share it: its operation n is P's operation n·Count + Index.
type ShardPacer struct {
	P            Pacer
	Index, Count uint64
}

// Pace implements Pacer.
func (p ShardPacer) Pace(elapsed time.Duration, started uint64) (time.Duration, bool) {
	return p.P.Pace(elapsed, started*p.Count+p.Index)
}

// String returns the inner schedule and the part, such as "2000/s, shard 1/4".
func (p ShardPacer) String() string {
	return fmt.Sprintf("%v, shard %d/%d", p.P, p.Index, p.Count)
}
