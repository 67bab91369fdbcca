package scenarios

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// This file records the lock scenarios' operations — each acquisition,
// write and release — for the fenced lock model (histcheck.Lock): one
// partition, the scenario's one lock.

// lockModelName is the lock model's name in a cell's history object.
const lockModelName = "fenced lock"

// lockHistory is a lock cell's recording.
type lockHistory struct {
	rec      *history.Recorder
	pause    func(n int) time.Duration // the lock's own pause between attempts
	classify func(error) string
	model    histcheck.Model
	// ops is the cell's estimated operation count (for auto mode); why,
	// when set, says why the cell records nothing although its scenario
	// has a model.
	ops int64
	why string
}

// lockHistoryOps estimates how many operations (acquisitions, writes,
// releases: perCycle each) a lock cell of length d makes when every
// holder works at least work: the lock serializes the work.
func lockHistoryOps(d, work time.Duration, perCycle int64) int64 {
	return perCycle * (int64(d/max(work, time.Millisecond)) + 1)
}

// newLockHistory prepares the recording of a lock cell of the strategy
// opened with opts (defaults filled in) on the lock name, of about ops
// operations, for conc workers. It records nothing for a strategy that issues no token a
// model can follow (the libraries), with history off, or in auto mode
// above the bound.
func newLockHistory(env *Env, strategy string, opts impl.LockOptions, name string, conc int, ops int64) *lockHistory {
	h := &lockHistory{classify: env.Backend.Classify, ops: ops}
	switch strategy {
	case impl.LockNaive:
		h.pause = func(int) time.Duration { return opts.Poll }
	case impl.LockToken, impl.LockFenced:
		h.pause = opts.Backoff
	default:
		h.why = fmt.Sprintf("%s gives no fencing token and takes the lock in its own retry loop, whose attempts paybench cannot time: no history checked (the server-side probes judge it)", strategy)
		return h
	}
	h.model = histcheck.Lock(histcheck.LockOptions{
		TTL: opts.TTL, Fenced: strategy == impl.LockFenced, RefreshedUnseen: opts.Watchdog,
		Name: func(int64) string { return name },
	})
	if env.Common.History.Records(ops) {
		// Room for twice the estimate per worker (any one may do them
		// all); beyond it the history is incomplete and says so.
		h.rec = history.New(history.Options{Clients: conc, PerClient: int(2*ops) + 64})
	}
	return h
}

// result is the cell's history object.
func (h *lockHistory) result(ctx context.Context, hopts histcheck.Options) *result.History {
	switch {
	case h.why != "" && hopts.Mode != histcheck.ModeOff:
		return &result.History{Model: lockModelName, Result: result.HistoryNotChecked, Reason: h.why}
	case h.why != "":
		return nil
	case h.rec != nil:
		return histcheck.Check(ctx, h.model, h.rec.Entries(), h.rec.Overflow(), hopts)
	}
	return hopts.NotChecked(lockModelName, h.ops)
}

// log is worker w's log (nil: not recording).
func (h *lockHistory) log(w *bench.Worker) *history.Log {
	if h == nil {
		return nil
	}
	return h.rec.Log(w.ID)
}

// acquire takes the lock as locker.Acquire does — impl.AcquireLoop over
// TryAcquire with the lock's own pause — timing each attempt, and records
// the attempt that took it (or that may have: a reply lost, or cut off by
// the deadline mid-command). An acquisition whose every attempt was
// answered "taken" records nothing: it changed nothing.
func (h *lockHistory) acquire(ctx context.Context, hl *history.Log, locker impl.Locker, name string, acq int64) (impl.Lease, error) {
	var call, ret int64
	tried := false
	lease, err := impl.AcquireLoop(ctx, name, func(ctx context.Context) (impl.Lease, bool, error) {
		call, tried = hl.Now(), true
		l, ok, err := locker.TryAcquire(ctx, name)
		ret = hl.Now()
		return l, ok, err
	}, h.pause)
	e := history.Entry{Kind: histcheck.LockAcquire, Key: 0, In: acq, Call: call, Return: ret}
	switch {
	case err == nil:
		e.OK, e.In2 = true, lease.Fence
	case !tried || errors.Is(err, impl.ErrLockBusy):
		return lease, err
	case errors.Is(err, impl.ErrLockNotAcquired) || impl.MayHaveApplied(h.classify(err)):
		e.Unknown, e.Return = true, hl.Now()
	default:
		return lease, err
	}
	hl.Add(e)
	return lease, err
}

// record adds the entry of a release or write (kind) of acquisition acq
// over [call, ret] that ended with err; refused is the error of its "no"
// (impl.ErrLockNotHeld, impl.ErrStaleFence). A failure that surely did not
// apply records nothing.
func (h *lockHistory) record(hl *history.Log, kind uint8, acq int64, lease impl.Lease, call, ret int64, err, refused error) {
	if hl == nil {
		return
	}
	e := history.Entry{Kind: kind, In: acq, In2: lease.Fence, Call: call, Return: ret}
	switch {
	case err == nil:
		e.OK = true
	case errors.Is(err, refused):
	case impl.MayHaveApplied(h.classify(err)):
		e.Unknown = true
	default:
		return
	}
	hl.Add(e)
}
