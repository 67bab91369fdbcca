package impl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// SlotStep is one shard's answer to a sharded-slots walk's take.
type SlotStep struct {
	// Took is what the step took from the shard, or, when Replayed, the
	// units the purchase's record on this shard says it took before.
	Took int64
	// Qty is the purchase's quantity as recorded on the shard (Replayed
	// only).
	Qty int64
	// Left is what the shard holds after the step.
	Left int64
	// HeldByOthers is what other unfinished walks hold on the shard
	// (units taken by a walk that may still give them back).
	HeldByOthers int64
	// Replayed reports that the purchase was already recorded on the
	// shard: nothing was taken by this step.
	Replayed bool
	// Unconfirmed reports that the step took units and the WAIT sent
	// after it (ConnConfig.WaitReplicas) did not confirm them.
	Unconfirmed bool
}

// SlotStepper runs the sharded-slots strategy's per-shard commands; each
// backend implements it with its library's script type. Every call
// touches one shard, so one slot.
type SlotStepper interface {
	// Take runs scripts.StockSlotTake on sh: takes up to need units (with
	// whole, need units or nothing); when id is not empty, first looks the
	// purchase up in the shard's record (Replayed) and records what it
	// takes as "<taken>/<qty>"; unless it took the whole qty at once, it
	// holds what it took under token.
	Take(ctx context.Context, sh SlotShard, token, id string, need, qty int64, whole bool) (SlotStep, error)
	// Release runs scripts.StockSlotRelease on each of shards, in one
	// round trip: a commit (refund false) drops token's hold (the units
	// stay taken); a refund gives the held units back to the shard, drops
	// the hold and, when id is not empty, the purchase's record there. It
	// returns the units given back.
	Release(ctx context.Context, shards []SlotShard, token, id string, refund bool) (int64, error)
	// Lock takes the item's walk lock (key, SET NX PX ttl) for token;
	// false when another walk holds it.
	Lock(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	// Unlock drops the walk lock if token still holds it
	// (scripts.LockRelease).
	Unlock(ctx context.Context, key, token string) error
}

// SlotWalkOptions tunes a sharded-slots walk.
type SlotWalkOptions struct {
	// Start is the shard the walk begins with; it then visits Start+1, …,
	// wrapping around, each shard at most once per pass.
	Start int
	// Token names the walk's holds and its lock: the purchase id, or a
	// random token for an anonymous deduction.
	Token string
	// ID is the purchase id ("" for a deduction: nothing is recorded).
	ID string
	// MaxRetries bounds the walks started again because other walks held
	// units or the item's walk lock.
	MaxRetries int
}

// Bounds of a sharded-slots walk.
const (
	// releaseTimeout bounds a walk's commit, refund or unlock after its
	// context ended: skipping them would leave units held.
	releaseTimeout = 3 * time.Second
	// slotLockTTL is the walk lock's lease: a splitting walk takes a few
	// round trips; a walk that dies holding it delays the others this long.
	slotLockTTL = 2 * time.Second
)

// SlotWalk takes qty units of an item whose stock is split over shards in
// different cluster slots (the sharded-slots strategy), one shard at a
// time, each step one atomic script on one shard:
//
//  1. It visits the shards from opts.Start on and takes the whole
//     quantity from the first shard that covers it: one step while stock
//     lasts, nothing held, no lock. For a purchase, the step records
//     id -> "<taken>/<qty>" on the shard in the same script.
//  2. When no shard covered it but the shards showed enough in all (what
//     they held, plus what other walks held there), it takes the item's
//     walk lock (one key, in shard 0's slot) and walks again, taking what
//     each shard can give: units taken before the walk is complete are
//     held on their shard (its holds hash, under opts.Token) and recorded
//     there; once complete, the holds are dropped (commit) and the units
//     stay sold. A walk that still runs short gives back what it held
//     (each shard's refund one script, which also deletes its record).
//     The lock keeps splitting walks from grabbing pieces of each other's
//     units for ever; correctness never rests on it.
//  3. It is refused when the shards, as it passed them, held less than
//     the quantity even counting what other walks held there; while other
//     walks' holds or lock may still make it up, it waits (at random, up
//     to 13 ms) and starts again, at most opts.MaxRetries times, then
//     fails with an error wrapping ErrContention.
//
// A purchase recorded on a shard is answered from the record (Replayed):
// its walk follows the same order (the start depends on the id only), so a
// re-sent purchase counts the units its first send took instead of taking
// them again. Remaining is what the visited shards held after their step:
// no one instant shows every shard when they live on different masters.
//
// A refusal means that, shard after shard, what each held plus what other
// walks held there added up to less than qty. Units never move between
// shards, and a shard gains only what walks holding units there give
// back, so what the shards hold afterwards is less than qty for good
// (during a sale, when nothing is restored).
func SlotWalk(ctx context.Context, st SlotStepper, shards []SlotShard, qty int64, opts SlotWalkOptions) (Deduction, error) {
	if len(shards) == 0 {
		return Deduction{}, errors.New("sharded-slots: no shards")
	}
	for retries := 0; ; retries++ {
		d, again, err := slotTry(ctx, st, shards, qty, opts)
		d.Retries = retries
		if err != nil || !again {
			return d, err
		}
		if retries >= opts.MaxRetries {
			return Deduction{Retries: retries}, fmt.Errorf("%w: %d walks ran short while other walks held units or the item's walk lock", ErrContention, retries+1)
		}
		// Let the other walks finish (complete or give their units back),
		// then walk again, waiting longer each time, at random, so that
		// walks that keep meeting stop meeting.
		wait := 50*time.Microsecond + time.Duration(rand.Int64N(int64(200*time.Microsecond)<<min(retries, 6)))
		if err := Sleep(ctx, wait); err != nil {
			return Deduction{Retries: retries}, err
		}
	}
}

// slotTry is one try: a pass taking the whole quantity from one shard,
// then, when that found none but the shards may make it up together, a
// splitting pass under the item's walk lock. again reports a short try
// that other walks' holds or lock may still make up.
func slotTry(ctx context.Context, st SlotStepper, shards []SlotShard, qty int64, opts SlotWalkOptions) (d Deduction, again bool, err error) {
	d, short, err := slotPass(ctx, st, shards, qty, opts, true)
	if err != nil || d.OK || !short {
		return d, false, err
	}
	lock := slotLockKey(shards) // only a splitting pass needs it
	ok, err := st.Lock(ctx, lock, opts.Token, slotLockTTL)
	if err != nil {
		return Deduction{}, false, fmt.Errorf("take the item's walk lock: %w", err)
	}
	if !ok {
		return d, true, nil
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if uerr := st.Unlock(uctx, lock, opts.Token); uerr != nil && err == nil {
			err = fmt.Errorf("drop the item's walk lock: %w", uerr)
		}
	}()
	d, short, err = slotPass(ctx, st, shards, qty, opts, false)
	if err != nil || d.OK {
		return d, false, err
	}
	return d, short, nil
}

// slotPass is one walk over the shards, taking the whole rest from one
// shard (whole) or what each shard can give. When it ends short, it gives
// back what it held and reports whether the shards and the holds of other
// walks it saw could make the quantity up (short: worth trying again, or
// splitting); when they could not, the deduction is refused.
func slotPass(ctx context.Context, st SlotStepper, shards []SlotShard, qty int64, opts SlotWalkOptions, whole bool) (d Deduction, short bool, err error) {
	n := len(shards)
	start := ((opts.Start % n) + n) % n
	target, got := qty, int64(0)
	fresh, replayed, unconfirmed := false, false, false
	var left, others, recorded int64
	var held []SlotShard // shards where this walk (or its id) took units
	for k := 0; k < n && got < target; k++ {
		sh := shards[(start+k)%n]
		step, err := st.Take(ctx, sh, opts.Token, opts.ID, target-got, target, whole)
		if err != nil {
			// The step may have applied: give back whatever the walk holds,
			// this shard's hold included.
			held = append(held, sh)
			if _, rerr := release(ctx, st, held, opts, true); rerr != nil {
				err = fmt.Errorf("%w (and giving back the units held failed: %v)", err, rerr)
			}
			return Deduction{}, false, err
		}
		left += step.Left
		others += step.HeldByOthers
		unconfirmed = unconfirmed || step.Unconfirmed
		if step.Replayed {
			// The recorded purchase's quantity is the one to complete.
			target, replayed = step.Qty, true
			recorded += step.Took
		} else if step.Took > 0 {
			fresh = true
		}
		if step.Took > 0 {
			got += step.Took
			held = append(held, sh)
		}
	}
	if got >= target {
		// One fresh step that covered the whole quantity held nothing;
		// otherwise every shard the walk took from (or found its id on)
		// may hold units under the token: the walk is complete, so they
		// stay sold.
		if !(len(held) == 1 && fresh && !replayed) {
			if _, err := release(ctx, st, held, opts, false); err != nil {
				return Deduction{}, false, fmt.Errorf("%d units taken, but dropping the walk's holds failed: %w", got, err)
			}
		}
		return Deduction{OK: true, Remaining: left, Replayed: !fresh, Unconfirmed: unconfirmed && fresh}, false, nil
	}
	back, err := release(ctx, st, held, opts, true)
	if err != nil {
		return Deduction{}, false, fmt.Errorf("the walk ran short (%d of %d units), and giving back the units it held failed: %w", got, target, err)
	}
	// What the shards held as the walk passed (what it took included, now
	// given back) and what other walks held there is all that can ever be
	// on them: when that, with what the purchase's records already hold,
	// does not make up the quantity, nothing will.
	return Deduction{Remaining: left + back}, recorded+left+back+others >= target, nil
}

// release commits or refunds the walk's holds on shards, even after ctx
// ended (bounded by releaseTimeout).
func release(ctx context.Context, st SlotStepper, shards []SlotShard, opts SlotWalkOptions, refund bool) (int64, error) {
	if len(shards) == 0 {
		return 0, nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	return st.Release(rctx, shards, opts.Token, opts.ID, refund)
}

// SlotDeduct is a sharded-slots deduction of qty from item's shards
// (layout): validated, then a SlotWalk from a random shard, holding what it
// takes under a random token until the walk is complete. Both backends'
// Deduct; st runs the steps in the backend's idiom.
func SlotDeduct(ctx context.Context, st SlotStepper, layout *SlotShards, item string, qty int64, maxRetries int) (Deduction, error) {
	if err := ValidateQuantity(qty); err != nil {
		return Deduction{}, err
	}
	return SlotWalk(ctx, st, layout.Shards(item), qty, SlotWalkOptions{
		Start: rand.IntN(layout.N()), Token: "~" + strconv.FormatUint(rand.Uint64(), 36), MaxRetries: maxRetries})
}

// SlotPurchase is a sharded-slots purchase id of qty units of item:
// validated, then a SlotWalk from the shard the id picks (SlotShardStart),
// recording on each shard what it took there. Both backends' Purchase.
func SlotPurchase(ctx context.Context, st SlotStepper, layout *SlotShards, item, id string, qty int64, maxRetries int) (Deduction, error) {
	if err := ValidatePurchase(qty, id); err != nil {
		return Deduction{}, err
	}
	return SlotWalk(ctx, st, layout.Shards(item), qty, SlotWalkOptions{
		Start: SlotShardStart(id, layout.N()), Token: id, ID: id, MaxRetries: maxRetries})
}
