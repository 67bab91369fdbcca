package histcheck

import (
	"context"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/reports/result"
)

// acq is acquisition a taking the lock over [call, ret] (ms) with fencing
// token f (0: none); rel and refresh its release and refresh, told ok;
// write its write with token f, accepted or not.
func acq(a, call, ret, f int64) history.Entry {
	return history.Entry{Kind: LockAcquire, In: a, In2: f, Call: call * 1e6, Return: ret * 1e6, OK: true, Client: int32(a)}
}

func rel(a, call, ret int64, ok bool) history.Entry {
	return history.Entry{Kind: LockRelease, In: a, Call: call * 1e6, Return: ret * 1e6, OK: ok, Client: int32(a)}
}

func refresh(a, call, ret int64, ok bool) history.Entry {
	return history.Entry{Kind: LockRefresh, In: a, Call: call * 1e6, Return: ret * 1e6, OK: ok, Client: int32(a)}
}

func write(a, call, ret, f int64, ok bool) history.Entry {
	return history.Entry{Kind: LockWrite, In: a, In2: f, Call: call * 1e6, Return: ret * 1e6, OK: ok, Client: int32(a)}
}

func TestLockModel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fenced  bool
		unseen  bool // leases refreshed by a watchdog
		ops     []history.Entry
		want    string
		witness string
	}{
		{"serial", true, false, []history.Entry{
			acq(1, 0, 1, 1), write(1, 2, 3, 1, true), rel(1, 4, 5, true), acq(2, 6, 7, 2), write(2, 8, 9, 2, true), rel(2, 10, 11, true),
		}, result.HistoryLinearizable, ""},
		{"a token that does not increase", true, false, []history.Entry{acq(1, 0, 1, 5), rel(1, 2, 3, true), acq(2, 4, 5, 5)},
			result.HistoryNotLinearizable, "holder 2 was granted token 5 after holder 1 had been granted token 5"},
		{"two holders on a live lease", true, false, []history.Entry{acq(1, 0, 1, 1), acq(2, 10, 11, 2)},
			result.HistoryNotLinearizable, "holder 2: acquire → taken, token 2"},
		{"taken after the lease ended", true, false, []history.Entry{acq(1, 0, 1, 1), acq(2, 150, 151, 2), rel(1, 160, 161, false), rel(2, 170, 171, true)},
			result.HistoryLinearizable, ""},
		{"a release by a holder whose lock was taken", false, false, []history.Entry{acq(1, 0, 1, 0), acq(2, 150, 151, 0), rel(1, 160, 161, true)},
			result.HistoryNotLinearizable, "holder 1's release was answered OK after holder 2 had taken the lock"},
		{"a release after the lease surely ended", false, false, []history.Entry{acq(1, 0, 1, 0), rel(1, 200, 201, true)},
			result.HistoryNotLinearizable, "holder 1: release → released"},
		{"a refused release while the lease ran", false, false, []history.Entry{acq(1, 0, 1, 0), rel(1, 20, 21, false)},
			result.HistoryNotLinearizable, "refused, not held"},
		{"a watchdog keeps the lease", false, true, []history.Entry{acq(1, 0, 1, 0), rel(1, 500, 501, true)},
			result.HistoryLinearizable, ""},
		{"a refresh keeps the lease", false, false, []history.Entry{acq(1, 0, 1, 0), refresh(1, 80, 81, true), rel(1, 150, 151, true)},
			result.HistoryLinearizable, ""},
		{"a refresh by a holder whose lock was taken", false, false, []history.Entry{acq(1, 0, 1, 0), acq(2, 150, 151, 0), refresh(1, 160, 161, true)},
			result.HistoryNotLinearizable, "holder 1: refresh → extended"},
		{"a stale write rejected", true, false, []history.Entry{
			acq(1, 0, 1, 1), acq(2, 150, 151, 2), write(2, 152, 153, 2, true), rel(2, 160, 161, true), write(1, 300, 301, 1, false), rel(1, 304, 305, false),
		}, result.HistoryLinearizable, ""},
		{"a stale write accepted (fenced)", true, false, []history.Entry{
			acq(1, 0, 1, 1), acq(2, 150, 151, 2), write(2, 152, 153, 2, true), write(1, 300, 301, 1, true),
		}, result.HistoryNotLinearizable, "holder 1's write was accepted after holder 2, who took the lock after it, had written: a stale write landed"},
		{"a stale write landed (no fencing token)", false, false, []history.Entry{
			acq(1, 0, 1, 0), acq(2, 150, 151, 0), write(2, 152, 153, 0, true), write(1, 300, 301, 0, true),
		}, result.HistoryNotLinearizable, "holder 1's write was accepted after holder 2, who took the lock after it, had written: a stale write landed"},
		{"an old holder's write before the new one's", false, false, []history.Entry{
			acq(1, 0, 1, 0), acq(2, 150, 151, 0), write(1, 160, 161, 0, true), write(2, 170, 171, 0, true),
		}, result.HistoryLinearizable, ""},
		{"a write rejected with nothing newer", true, false, []history.Entry{acq(1, 0, 1, 1), write(1, 2, 3, 1, false)},
			result.HistoryNotLinearizable, "rejected, stale"},
		{"a lost acquisition that did not happen", true, false, []history.Entry{lost(acq(9, 0, 1, 0)), acq(2, 50, 51, 1)},
			result.HistoryLinearizable, ""},
		{"a lost acquisition that held the lock", true, false, []history.Entry{lost(acq(9, 0, 1, 0)), acq(2, 10, 11, 1), rel(2, 12, 13, true), acq(3, 20, 21, 1)},
			result.HistoryNotLinearizable, ""},
		{"a lost release that happened", true, false, []history.Entry{acq(1, 0, 1, 1), lost(rel(1, 2, 3, true)), acq(2, 10, 11, 2)},
			result.HistoryLinearizable, ""},
		{"a lost write that landed", true, false, []history.Entry{acq(1, 0, 1, 1), acq(2, 150, 151, 2), lost(write(2, 152, 153, 2, true)), write(1, 160, 161, 1, false)},
			result.HistoryLinearizable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Lock(LockOptions{TTL: 100 * time.Millisecond, Fenced: tc.fenced, RefreshedUnseen: tc.unseen, Name: func(int64) string { return "race" }})
			h := Check(context.Background(), m, tc.ops, 0, Options{Timeout: 5 * time.Second})
			wantHistory(t, h, len(tc.ops), tc.want, "lock race", tc.witness)
		})
	}
}

func TestLockLive(t *testing.T) {
	live := liveAdd(liveAdd(liveAdd("", 12, 1), 3, 2), 123, 3)
	for a, want := range map[int64]int64{12: 1, 3: 2, 123: 3, 1: 0, 23: 0} {
		if got := liveToken(live, a); got != want {
			t.Fatalf("token of %d in %q: %d, want %d", a, live, got, want)
		}
	}
	if got := liveDrop(live, 3); got != "12:1;123:3;" {
		t.Fatalf("drop 3 from %q: %q", live, got)
	}
	if got := liveDrop(live, 4); got != live {
		t.Fatalf("drop 4 from %q: %q", live, got)
	}
}
