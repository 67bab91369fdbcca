package impl

import (
	"fmt"
	"hash/fnv"
)

// ValidateUnits returns an error wrapping ErrInvalidQuantity unless units
// is a stock a Set may seed: zero or more (not bounded by MaxQuantity).
func ValidateUnits(units int64) error {
	if units < 0 {
		return fmt.Errorf("%w: stock of %d units (must be 0 or more)", ErrInvalidQuantity, units)
	}
	return nil
}

// StockShardKeys returns the n shard keys of item (StockShardKey), starting
// at shard first and wrapping around: the sharded strategy's scripts take
// the first key as the shard to try.
func StockShardKeys(k Keyspace, item string, first, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = StockShardKey(k, item, (first+i)%n)
	}
	return keys
}

// SplitUnits spreads units evenly over n shards; the remainder goes to the
// first shards, one unit each. n must be positive.
func SplitUnits(units int64, n int) []int64 {
	shares := make([]int64, n)
	for i := range shares {
		shares[i] = units / int64(n)
		if int64(i) < units%int64(n) {
			shares[i]++
		}
	}
	return shares
}

// DecodeDeduction decodes a check-and-deduct script's reply {ok, remaining}
// (ok is 1 when the units were taken), or a purchase script's
// {ok, remaining, replayed} (replayed is 1 when the id was already
// recorded and nothing was deducted).
func DecodeDeduction(vals []int64) (Deduction, error) {
	switch len(vals) {
	case 2:
		return Deduction{OK: vals[0] == 1, Remaining: vals[1]}, nil
	case 3:
		return Deduction{OK: vals[0] == 1, Remaining: vals[1], Replayed: vals[2] == 1}, nil
	}
	return Deduction{}, fmt.Errorf("script replied %v, want {ok, remaining} or {ok, remaining, replayed}", vals)
}

// DecodeWaitedDeduction is DecodeDeduction of a script reply followed by
// a WAIT: an answer OK, not a replay, that the WAIT did not confirm
// (confirmed false) is marked Unconfirmed.
func DecodeWaitedDeduction(vals []int64, confirmed bool) (Deduction, error) {
	d, err := DecodeDeduction(vals)
	if err != nil {
		return d, err
	}
	d.Unconfirmed = d.OK && !d.Replayed && !confirmed
	return d, nil
}

// SlotShardStart is the shard a sharded-slots purchase's walk starts at:
// a hash (FNV-1a) of its id, so every send of one purchase walks the
// shards in the same order.
func SlotShardStart(id string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id)) // a hash.Hash never fails to write
	return int(h.Sum32() % uint32(max(n, 1)))
}
