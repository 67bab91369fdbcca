package histcheck

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/paybench/paybench/bench/history"
)

// Operations of the fenced lock model (Entry.Kind). In is the
// acquisition (one lease: every operation of one holder's turn carries
// the same In), In2 its fencing token (0 for a lock that issues none).
const (
	// LockAcquire is the attempt that took the lock: OK, In2 the fencing
	// token granted. Unknown: the attempt's reply was lost (it may have
	// taken the lock for a holder that never learned it).
	LockAcquire uint8 = 7
	// LockRelease is a release: OK released, else refused (not held).
	LockRelease uint8 = 8
	// LockRefresh is a refresh of the lease: OK extended, else refused.
	LockRefresh uint8 = 9
	// LockWrite is a write to the protected resource on behalf of the
	// acquisition: OK accepted, else rejected (a stale fencing token).
	LockWrite uint8 = 10
)

// LockOptions describe the lock a model checks.
type LockOptions struct {
	// TTL is the lease length.
	TTL time.Duration
	// Fenced says the lock issues fencing tokens (Entry.In2) and the
	// resource checks them. Without them, an acquisition's token is its
	// place in the order the lock was granted, and a resource that
	// accepts a write of an older acquisition after one of a newer one
	// has let a stale write land.
	Fenced bool
	// RefreshedUnseen says leases may be refreshed by operations the
	// history does not hold (a watchdog's): a lease then never surely
	// ends.
	RefreshedUnseen bool
	// Name names a lock (the partition) from its key.
	Name func(key int64) string
}

// Lock is the lock model, with fencing: per lock, an acquisition takes
// the lock only when it is free — released, or its holder's lease may
// have ended — and its token exceeds every token granted before; a
// release or refresh is answered OK only for the lock's holder while its
// lease may still run, and refused otherwise; the protected resource
// accepts a write whose token is not older than the newest it accepted,
// and rejects (fenced) an older one.
//
// The lease's expiry is modelled from the client's clock, conservatively:
// a lease began within its acquisition's (or last refresh's) call and
// return, so it may have ended for an operation that returned at least
// TTL after that call, and has surely ended for one called at least TTL
// after that return (with expirySlack either way). Who was inside the
// critical section on a live lease at the server's instant is left to the
// server-side probes.
func Lock(opts LockOptions) Model {
	m := lockModel{ttl: int64(opts.TTL), fenced: opts.Fenced, refreshed: opts.RefreshedUnseen}
	return Model{
		Name:          "fenced lock",
		Init:          func(int64) any { return lockState{holder: lockFree} },
		Step:          func(state any, e history.Entry) []any { return m.step(state.(lockState), e) },
		Describe:      m.describe,
		DescribeState: func(state any) string { return describeLockState(state.(lockState)) },
		Partition:     func(key int64) string { return "lock " + opts.Name(key) },
		Explain:       m.explain,
	}
}

// Holders of a lockState besides acquisitions.
const (
	lockFree      = -1 // nobody holds the lock
	lockAnonymous = -2 // an attempt whose reply was lost took it
)

type lockModel struct {
	ttl       int64
	fenced    bool
	refreshed bool
}

// lockState is a lock: its holder and the span in which its lease began,
// the newest token granted and the newest token the resource accepted;
// without fencing tokens, live holds the tokens of the acquisitions that
// may still write ("id:token;" in grant order).
type lockState struct {
	holder, from, to int64
	granted, newest  int64
	live             string
}

func describeLockState(s lockState) string {
	var b strings.Builder
	switch s.holder {
	case lockFree:
		b.WriteString("free")
	case lockAnonymous:
		b.WriteString("held by a lost acquisition")
	default:
		fmt.Fprintf(&b, "held by %d", s.holder)
	}
	fmt.Fprintf(&b, ", newest token %d, resource at %d", s.granted, s.newest)
	return b.String()
}

// mayHaveEnded reports whether the holder's lease may have ended by the
// time e took effect (true when nobody holds the lock).
func (m lockModel) mayHaveEnded(s lockState, e history.Entry) bool {
	return s.holder == lockFree || e.Unknown || e.Return >= s.from+m.ttl-int64(expirySlack)
}

// surelyEnded reports whether the holder's lease had surely ended before
// e took effect.
func (m lockModel) surelyEnded(s lockState, e history.Entry) bool {
	return !m.refreshed && s.holder != lockFree && e.Call >= s.to+m.ttl+int64(expirySlack)
}

func (m lockModel) step(s lockState, e history.Entry) []any {
	a := e.In
	switch e.Kind {
	case LockAcquire:
		if !m.mayHaveEnded(s, e) {
			if e.Unknown {
				return []any{s}
			}
			return nil
		}
		taken := s
		taken.from, taken.to = e.Call, e.Return
		switch {
		case e.Unknown:
			taken.holder = lockAnonymous
			if !m.fenced {
				taken.granted++
			}
			return []any{s, taken}
		case m.fenced && e.In2 <= s.granted:
			return nil
		case m.fenced:
			taken.holder, taken.granted = a, e.In2
		default:
			taken.holder, taken.granted = a, s.granted+1
			taken.live = liveAdd(s.live, a, taken.granted)
		}
		return []any{taken}
	case LockRelease, LockRefresh:
		own := s.holder == a && !m.surelyEnded(s, e)
		done := s // the operation applied
		if e.Kind == LockRelease {
			done.holder, done.live = lockFree, liveDrop(s.live, a)
		} else {
			done.from, done.to = e.Call, e.Return
		}
		ended := s // refused: the lease had ended
		if s.holder == a {
			ended.holder = lockFree
		}
		if e.Kind == LockRelease {
			ended.live = liveDrop(s.live, a)
		}
		switch {
		case e.Unknown && own:
			return []any{done, ended}
		case e.Unknown:
			return []any{ended}
		case e.OK && own:
			return []any{done}
		case !e.OK && (s.holder != a || m.mayHaveEnded(s, e)):
			return []any{ended}
		}
		return nil
	case LockWrite:
		t := e.In2
		if !m.fenced {
			t = liveToken(s.live, a)
		}
		landed := s
		landed.newest = t
		switch {
		case e.Unknown && t >= s.newest:
			return []any{s, landed}
		case e.Unknown:
			return []any{s}
		case e.OK && t >= s.newest:
			return []any{landed}
		case !e.OK && t < s.newest:
			return []any{s}
		}
	}
	return nil
}

// liveAdd, liveDrop and liveToken keep the tokens of the acquisitions
// that may still write, for a lock without fencing tokens.
func liveAdd(live string, a, token int64) string {
	return live + strconv.FormatInt(a, 10) + ":" + strconv.FormatInt(token, 10) + ";"
}

func liveDrop(live string, a int64) string {
	i, n := liveFind(live, a)
	if i < 0 {
		return live
	}
	return live[:i] + live[i+n:]
}

func liveToken(live string, a int64) int64 {
	i, n := liveFind(live, a)
	if i < 0 {
		return 0 // not an acquisition the lock granted: older than any
	}
	_, tok, _ := strings.Cut(live[i:i+n-1], ":")
	t, _ := strconv.ParseInt(tok, 10, 64)
	return t
}

// liveFind returns where a's entry starts in live and its length (-1
// when a has none).
func liveFind(live string, a int64) (int, int) {
	prefix := strconv.FormatInt(a, 10) + ":"
	for i := 0; i < len(live); {
		j := strings.IndexByte(live[i:], ';')
		if j < 0 {
			break
		}
		if strings.HasPrefix(live[i:i+j], prefix) {
			return i, j + 1
		}
		i += j + 1
	}
	return -1, 0
}

func (m lockModel) describe(e history.Entry) string {
	who := fmt.Sprintf("holder %d", e.In)
	if e.Unknown {
		switch e.Kind {
		case LockAcquire:
			return "an attempt to acquire → reply lost (may have taken the lock)"
		case LockRelease:
			return who + ": release → reply lost"
		case LockRefresh:
			return who + ": refresh → reply lost"
		}
		return who + ": write → reply lost"
	}
	token := ""
	if m.fenced {
		token = fmt.Sprintf(" with token %d", e.In2)
	}
	switch e.Kind {
	case LockAcquire:
		if m.fenced {
			return fmt.Sprintf("%s: acquire → taken, token %d", who, e.In2)
		}
		return who + ": acquire → taken"
	case LockRelease:
		if e.OK {
			return who + ": release → released"
		}
		return who + ": release → refused, not held"
	case LockRefresh:
		if e.OK {
			return who + ": refresh → extended"
		}
		return who + ": refresh → refused, not held"
	}
	if e.OK {
		return fmt.Sprintf("%s: write%s → accepted", who, token)
	}
	return fmt.Sprintf("%s: write%s → rejected, stale", who, token)
}

// explain finds the lock anomalies that are proofs by themselves, from
// the real-time order of the operations alone: a token granted after an
// acquisition that returned before it was called, no larger than that
// one's; a release answered OK although another holder took the lock
// between its holder's acquisition and the release; and a write accepted
// from a holder after a write of a later holder had already landed. It
// reports the one complete soonest.
func (m lockModel) explain(ops []history.Entry) (string, []history.Entry) {
	acq := map[int64]history.Entry{} // by acquisition
	var acqs []history.Entry
	for _, e := range ops {
		if e.Kind == LockAcquire && !e.Unknown {
			acq[e.In] = e
			acqs = append(acqs, e)
		}
	}
	sort.Slice(acqs, func(i, j int) bool { return acqs[i].Return < acqs[j].Return })
	// before reports whether acquisition a surely came before b (a's
	// acquire returned before b's was called).
	before := func(a, b history.Entry) bool { return a.Return < b.Call }
	type found struct {
		text string
		ops  []history.Entry
		at   int64
	}
	var best *found
	offer := func(text string, at int64, ops ...history.Entry) {
		if best == nil || at < best.at {
			best = &found{text, ops, at}
		}
	}
	if m.fenced {
		// Two acquisitions, a surely before b, whose tokens do not
		// increase.
		for _, b := range acqs {
			for _, a := range acqs {
				if before(a, b) && b.In2 <= a.In2 {
					offer(fmt.Sprintf("holder %d was granted token %d after holder %d had been granted token %d", b.In, b.In2, a.In, a.In2), b.Return, a, b)
					break
				}
			}
		}
	}
	for _, r := range ops {
		if r.Kind != LockRelease || r.Unknown || !r.OK {
			continue
		}
		a, ok := acq[r.In]
		if !ok {
			continue
		}
		for _, b := range acqs {
			if b.In != a.In && before(a, b) && b.Return < r.Call {
				offer(fmt.Sprintf("holder %d's release was answered OK after holder %d had taken the lock: it released a lock that was no longer its own", a.In, b.In), r.Return, a, b, r)
				break
			}
		}
	}
	// Writes accepted: a stale one is accepted after a write of a surely
	// later acquisition (a later fencing token) landed.
	var writes []history.Entry
	for _, e := range ops {
		if e.Kind == LockWrite && !e.Unknown && e.OK {
			writes = append(writes, e)
		}
	}
	later := func(x, y history.Entry) bool { // y's token surely exceeds x's
		if m.fenced {
			return y.In2 > x.In2
		}
		ax, okx := acq[x.In]
		ay, oky := acq[y.In]
		return okx && oky && before(ax, ay)
	}
	for _, w := range writes {
		for _, v := range writes {
			if v.Return < w.Call && later(w, v) {
				// The two acquisitions (when recorded), then the writes.
				var involved []history.Entry
				for _, x := range []int64{w.In, v.In} {
					if a, ok := acq[x]; ok {
						involved = append(involved, a)
					}
				}
				offer(fmt.Sprintf("holder %d's write was accepted after holder %d, who took the lock after it, had written: a stale write landed", w.In, v.In), w.Return, append(involved, v, w)...)
				break
			}
		}
	}
	if best == nil {
		return "", nil
	}
	return best.text, best.ops
}
