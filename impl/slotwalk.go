package impl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
}

// SlotStepper runs the sharded-slots strategy's per-shard scripts; each
// backend implements it with its library's script type. Every call
// touches one shard, so one slot.
type SlotStepper interface {
	// Take runs scripts.StockSlotTake on sh: takes up to need units; when
	// id is not empty, first looks the purchase up in the shard's record
	// (Replayed) and records what it takes as "<taken>/<qty>"; when it
	// takes less than need, holds what it took under token.
	Take(ctx context.Context, sh SlotShard, token, id string, need, qty int64) (SlotStep, error)
	// Release runs scripts.StockSlotRelease on each of shards, in one
	// round trip: a commit (refund false) drops token's hold (the units
	// stay taken); a refund gives the held units back to the shard, drops
	// the hold and, when id is not empty, the purchase's record there. It
	// returns the units given back.
	Release(ctx context.Context, shards []SlotShard, token, id string, refund bool) (int64, error)
}

// SlotWalkOptions tunes a sharded-slots walk.
type SlotWalkOptions struct {
	// Start is the shard the walk begins with; it then visits Start+1, …,
	// wrapping around, each shard at most once per attempt.
	Start int
	// Token names the walk's holds: the purchase id, or a random token for
	// an anonymous deduction.
	Token string
	// ID is the purchase id ("" for a deduction: nothing is recorded).
	ID string
	// MaxRetries bounds the walks started again after one ran short while
	// other walks held units.
	MaxRetries int
}

// releaseTimeout bounds a walk's commit or refund after its context ended:
// skipping it would leave units held.
const releaseTimeout = 3 * time.Second

// SlotWalk takes qty units of an item whose stock is split over shards in
// different cluster slots (the sharded-slots strategy), one shard at a
// time, each step one atomic script on one shard:
//
//   - it visits the shards from opts.Start on, taking what each can give
//     until qty is reached; a shard that covers the rest alone ends the
//     walk in one step (the usual case while stock lasts);
//   - units taken from a shard before the walk is complete are held there
//     (the shard's holds hash, under opts.Token) and, for a purchase,
//     recorded there with the id; once complete, the holds are dropped
//     (commit) and the units stay sold;
//   - a walk that visited every shard without reaching qty gives back what
//     it held (each shard's refund one script, which also deletes its
//     record) and is refused — unless some shard showed units held by
//     another walk that might come back, in which case it starts again
//     (at most opts.MaxRetries times, then an error wrapping
//     ErrContention).
//
// A purchase recorded on a shard is answered from the record (Replayed):
// its walk follows the same order (the start depends on the id only), so a
// re-sent purchase counts the units its first send took instead of taking
// them again. Remaining is what the visited shards held after their step:
// no one instant shows every shard when they live on different masters.
//
// A refusal therefore means that every shard was found short, one after
// the other, with nothing held by another walk: since units never move
// between shards, what is left then is less than qty for good (during a
// sale, when nothing is restored).
func SlotWalk(ctx context.Context, st SlotStepper, shards []SlotShard, qty int64, opts SlotWalkOptions) (Deduction, error) {
	n := len(shards)
	if n == 0 {
		return Deduction{}, errors.New("sharded-slots: no shards")
	}
	for retries := 0; ; retries++ {
		d, contended, err := slotAttempt(ctx, st, shards, qty, opts)
		d.Retries = retries
		if err != nil || d.OK || !contended {
			return d, err
		}
		if retries >= opts.MaxRetries {
			return Deduction{Retries: retries}, fmt.Errorf("%w: the walk ran short %d times while other walks held units", ErrContention, retries+1)
		}
		// Another walk held units when this one ran short: let it finish
		// (complete or give them back), then walk again.
		if err := Sleep(ctx, time.Duration(50+rand.IntN(450))*time.Microsecond); err != nil {
			return Deduction{Retries: retries}, err
		}
	}
}

// slotAttempt is one walk over the shards. contended reports a short walk
// that saw units held by other walks.
func slotAttempt(ctx context.Context, st SlotStepper, shards []SlotShard, qty int64, opts SlotWalkOptions) (d Deduction, contended bool, err error) {
	n := len(shards)
	start := ((opts.Start % n) + n) % n
	target, got := qty, int64(0)
	fresh, replayed := false, false
	var left int64
	var held []SlotShard // shards where this walk (or its id) took units
	for k := 0; k < n && got < target; k++ {
		sh := shards[(start+k)%n]
		step, err := st.Take(ctx, sh, opts.Token, opts.ID, target-got, target)
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
		if step.HeldByOthers > 0 {
			contended = true
		}
		if step.Replayed {
			// The recorded purchase's quantity is the one to complete.
			target, replayed = step.Qty, true
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
		return Deduction{OK: true, Remaining: left, Replayed: !fresh}, false, nil
	}
	back, err := release(ctx, st, held, opts, true)
	if err != nil {
		return Deduction{}, false, fmt.Errorf("the walk ran short (%d of %d units), and giving back the units it held failed: %w", got, target, err)
	}
	return Deduction{Remaining: left + back}, contended, nil
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
