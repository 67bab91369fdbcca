package scenarios

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// lockTestDuration keeps each test cell short; the defaults (2 s, 50
// workers) are what the command line runs. The verdicts are asserted; the
// figures only for their bookkeeping (a loaded machine may take few locks
// in a cell).
const lockTestDuration = time.Second

// wantLockHistory fails t unless the cell's history (the fenced lock
// model) agrees with its verdict: not linearizable, with a witness,
// exactly when it REPRODUCED.
func wantLockHistory(t *testing.T, cell result.Cell, verdict result.Verdict) {
	t.Helper()
	want := result.HistoryLinearizable
	if verdict == result.Reproduced {
		want = result.HistoryNotLinearizable
	}
	h := cell.History
	if h == nil || h.Result != want || h.Model != lockModelName || h.Partitions != 1 || h.Ops < 2 || h.Partition != "" && !strings.HasPrefix(h.Partition, "lock ") {
		t.Fatalf("history %+v, want %s", h, want)
	}
	if want == result.HistoryNotLinearizable && (h.Witness == "" || len(h.WitnessOps) == 0) {
		t.Fatalf("a violation without its witness: %+v", h)
	}
	t.Logf("history: %s (%d operations) %s", h.Result, h.Ops, h.Witness)
}

func TestLockRaceVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			watchdog bool
			want     result.Verdict
		}{
			{impl.LockNaive, false, result.Reproduced},
			{impl.LockToken, false, result.Pass},
			{impl.LockFenced, false, result.Pass},
			{impl.LockToken, true, result.Pass},
		} {
			name := backend + "/" + tc.strategy
			if tc.watchdog {
				name += "+watchdog"
			}
			t.Run(name, func(t *testing.T) {
				s := newLockRace()
				s.Watchdog = tc.watchdog
				env := testEnv(t, backend)
				env.Common.Duration = lockTestDuration
				cell := runJudged(t, s, env, tc.strategy)
				t.Logf("%s: %s", cell.Verdict, cell.Summary)
				if cell.Verdict != tc.want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, tc.want, cell.Summary, cell.Invariants)
				}
				wantLockHistory(t, cell, tc.want)
				f := cell.Figures
				if f["acquisitions"] < 2 || f["acquisitions"] != f["entered"] || f["entered"] != f["left"] {
					t.Errorf("acquisitions %v, entered %v, left %v", f["acquisitions"], f["entered"], f["left"])
				}
				if f["lost_updates"] < 0 || f["counter"]+f["lost_updates"] != f["left"] {
					t.Errorf("counter %v + lost %v != left %v", f["counter"], f["lost_updates"], f["left"])
				}
				if f["errors"] != 0 || len(cell.Errors) != 0 {
					t.Errorf("errors: %v", cell.Errors)
				}
				if cell.Steps["acquire"].Corrected.Count != int64(f["acquisitions"]) || cell.Steps["hold"].Corrected.Count != int64(f["acquisitions"]) {
					t.Errorf("steps %+v, want one acquire and one hold per acquisition (%v)", cell.Steps, f["acquisitions"])
				}
				if tc.strategy != impl.LockNaive && f["releases_foreign"] > f["releases_refused"] {
					t.Errorf("%s: %v releases found the lock held by another, only %v were refused", tc.strategy, f["releases_foreign"], f["releases_refused"])
				}
			})
		}
	}
}

func TestLockExpiryVerdicts(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			strategy string
			want     result.Verdict
		}{
			{impl.LockNaive, result.Reproduced},
			{impl.LockToken, result.Reproduced},
			{impl.LockFenced, result.Pass},
		} {
			t.Run(backend+"/"+tc.strategy, func(t *testing.T) {
				s := newLockExpiry()
				s.PauseRate = 0.25 // more pauses in a shorter cell
				env := testEnv(t, backend)
				env.Common.Duration = lockTestDuration
				cell := runJudged(t, s, env, tc.strategy)
				t.Logf("%s: %s", cell.Verdict, cell.Summary)
				if cell.Verdict != tc.want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, tc.want, cell.Summary, cell.Invariants)
				}
				wantLockHistory(t, cell, tc.want)
				f := cell.Figures
				if f["errors"] != 0 || len(cell.Errors) != 0 {
					t.Errorf("errors: %v", cell.Errors)
				}
				if f["writes_landed"] != f["writes_counted"] {
					t.Errorf("log holds %v writes, resource counted %v", f["writes_landed"], f["writes_counted"])
				}
				if tc.strategy != impl.LockFenced && f["stale_writes_rejected"] != 0 {
					t.Errorf("%s: %v writes rejected by a resource with no fencing", tc.strategy, f["stale_writes_rejected"])
				}
			})
		}
	}
}

func TestLockScenarioValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Scenario
		edit func(s Scenario)
	}{
		{"race zero ttl", newLockRace(), func(s Scenario) { s.(*LockRace).TTL = 0 }},
		{"race bad work", newLockRace(), func(s Scenario) { s.(*LockRace).work = "fast" }},
		{"race reversed work", newLockRace(), func(s Scenario) { s.(*LockRace).work = "150ms-50ms" }},
		{"race negative work", newLockRace(), func(s Scenario) { s.(*LockRace).work = "-5ms" }},
		{"race no acquire timeout", newLockRace(), func(s Scenario) { s.(*LockRace).AcquireTimeout = 0 }},
		{"expiry pause within ttl", newLockExpiry(), func(s Scenario) { s.(*LockExpiry).Pause = 50 * time.Millisecond }},
		{"expiry zero rate", newLockExpiry(), func(s Scenario) { s.(*LockExpiry).PauseRate = 0 }},
		{"expiry rate above 1", newLockExpiry(), func(s Scenario) { s.(*LockExpiry).PauseRate = 1.5 }},
		{"expiry negative work", newLockExpiry(), func(s Scenario) { s.(*LockExpiry).Work = -time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.edit(tc.s)
			if err := tc.s.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	for _, s := range []Scenario{newLockRace(), newLockExpiry()} {
		if err := s.Validate(); err != nil {
			t.Errorf("%s defaults: %v", s.Name(), err)
		}
		if !slices.Contains(Names(), s.Name()) {
			t.Errorf("%s is not registered", s.Name())
		}
	}
}

func TestAuditResourceLog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []string
		stale   int
		ordered bool
		last    int64
		maxKey  int64
	}{
		{"empty", nil, 0, true, 0, 0},
		{"epochs in order", []string{"0:1", "0:2", "0:2", "0:5"}, 0, true, 5, 5},
		{"stale epoch", []string{"0:1", "0:3", "0:2", "0:4", "0:1"}, 2, true, 1, 4},
		{"fences rule over epochs", []string{"1:5", "2:4", "2:6", "3:1"}, 0, true, 3, 3},
		{"stale fence", []string{"2:1", "1:2"}, 1, false, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := auditResourceLog(tc.entries)
			if err != nil {
				t.Fatal(err)
			}
			if a.stale != tc.stale || a.fenceOrdered != tc.ordered || a.lastKey != tc.last || a.maxKey != tc.maxKey {
				t.Errorf("audit %+v, want stale %d ordered %t last %d max %d", a, tc.stale, tc.ordered, tc.last, tc.maxKey)
			}
		})
	}
	for _, bad := range []string{"nofence", "x:1", "1:x"} {
		if _, err := auditResourceLog([]string{bad}); err == nil {
			t.Errorf("entry %q accepted", bad)
		}
	}
}

func TestLockAcquireReleaseOperation(t *testing.T) {
	op, err := LookupOperation("lock.acquire-release")
	if err != nil {
		t.Fatal(err)
	}
	if op.Strategies[0] != impl.LockToken || !slices.Equal(slices.Sorted(slices.Values(op.Strategies)), slices.Sorted(slices.Values(impl.AllLockStrategies()))) {
		t.Errorf("strategies %v", op.Strategies)
	}
	for _, backend := range impl.Backends() {
		for _, strategy := range op.Strategies {
			for _, keys := range []int{1, 4} {
				t.Run(backend+"/"+strategy+"/keys="+strconv.Itoa(keys), func(t *testing.T) {
					env := testEnv(t, backend)
					lenv := &LoadEnv{
						Backend:  env.Backend,
						Admin:    env.Admin,
						Keys:     env.Keys,
						KeyCount: keys,
						Pick:     func(w *bench.Worker) int { return int(w.Seq % int64(keys)) },
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					load, err := op.Setup(ctx, lenv, strategy)
					if lib, ok := impl.LibraryOf(strategy); ok && lib.Backend != backend {
						if !errors.Is(err, impl.ErrNotSupported) {
							t.Fatalf("%s on %s: error %v, want ErrNotSupported", strategy, backend, err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if lib, ok := impl.LibraryOf(strategy); ok && !strings.HasPrefix(load.Params["lib.library"], lib.Package) {
						t.Errorf("params %v: no library setting", load.Params)
					}
					const requests = 60
					stats, err := bench.Run(ctx, bench.Config{Concurrency: 4, Requests: requests, Seed: 1}, load.Op)
					if err != nil {
						t.Fatal(err)
					}
					// rueidislock's waiters sometimes wait out their whole
					// deadline although nobody holds the lock (README,
					// "Lock and limiter libraries"): its acquisitions may
					// time out, and nothing else may fail.
					timeouts := int64(0)
					if strategy == impl.LockRueidislock {
						timeouts = stats.Errors[impl.ClassContention] // the lock stayed busy: a refusal
					}
					if stats.Ops != requests || stats.ErrorCount() != timeouts {
						t.Fatalf("ops %d, errors %v", stats.Ops, stats.Errors)
					}
					f, err := load.Figures(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if f["acquisitions"] != float64(requests-timeouts) || f["acquire_timeouts"] != float64(timeouts) || f["releases_refused"] != 0 || f["locks"] != float64(keys) {
						t.Errorf("figures %v", f)
					}
					// Every lock was released: none is left under the prefix
					// (fenced's counters stay).
					for _, k := range env.Admin.Keys(ctx, env.Keys.Pattern()).Val() {
						if !strings.HasSuffix(k, ":fence") {
							t.Errorf("%s still held", k)
						}
					}
				})
			}
		}
	}
}

// healthyLockRace is the outcome of a lock-race cell that held: 20 cycles,
// all counted, 5 overlaps after expiry.
func healthyLockRace(strategy string) lockRaceOutcome {
	return lockRaceOutcome{
		strategy: strategy, figures: map[string]float64{"acquisitions": 20},
		acquired: 20, entered: 20, left: 20, counter: 16,
		overlaps: 5, maxInside: 2, expiredInside: 5, releasesForeign: 3, releasesRefused: 3,
	}
}

// TestLockRaceSettle settles failed cycles against what the probe still
// holds, and checks the books, the settled count and the summary.
func TestLockRaceSettle(t *testing.T) {
	const counted = "every critical section was counted"
	for _, tc := range []struct {
		name     string
		strategy string
		fail     lockRaceFailure
		inside   bool
		edit     func(o *lockRaceOutcome) // the probe's figures with the failure
		broken   []string
		settled  int64
		say      string
	}{
		{"acquire reply lost", impl.LockToken, lockRaceFailure{stage: lockStageAcquire, err: errLost}, false,
			func(*lockRaceOutcome) {}, nil, 1, "1 replies lost, 0 had left their holder inside"},
		{"entry reply lost, entered", impl.LockFenced, lockRaceFailure{stage: lockStageEnter, id: "1:7", err: errLost}, true,
			func(o *lockRaceOutcome) { o.acquired, o.entered, o.stillInside = 21, 21, 1 }, nil, 1, "1 replies lost, 1 had left their holder inside"},
		{"entry reply lost, not entered", impl.LockFenced, lockRaceFailure{stage: lockStageEnter, id: "1:7", err: errLost}, false,
			func(o *lockRaceOutcome) { o.acquired = 21 }, nil, 1, "1 replies lost, 0 had"},
		{"counter write lost", impl.LockNaive, lockRaceFailure{stage: lockStageSection, id: "1:7", err: errLost}, true,
			func(o *lockRaceOutcome) { o.acquired, o.entered, o.stillInside = 21, 21, 1 }, nil, 1, "1 replies lost, 1 had"},
		{"counter written by a holder left inside", impl.LockToken, lockRaceFailure{stage: lockStageSection, id: "1:7", err: errLost}, true,
			func(o *lockRaceOutcome) { o.acquired, o.entered, o.stillInside, o.counter = 21, 21, 1, 21 }, nil, 1, "at least 0 lost updates of 20"},
		{"exit reply lost, left", impl.LockToken, lockRaceFailure{stage: lockStageLeave, id: "1:7", err: errLost}, false,
			func(o *lockRaceOutcome) { o.acquired, o.entered, o.left = 21, 21, 21 }, nil, 1, "1 replies lost, 0 had"},
		{"token release lost on another's lock", impl.LockToken, lockRaceFailure{stage: lockStageRelease, id: "1:7", foreign: true, err: errLost}, false,
			func(o *lockRaceOutcome) { o.acquired, o.entered, o.left = 21, 21, 21 }, nil, 1, "1 replies lost"},
		{"naive release lost on another's lock", impl.LockNaive, lockRaceFailure{stage: lockStageRelease, id: "1:7", foreign: true, err: errLost}, false,
			func(o *lockRaceOutcome) { o.acquired, o.entered, o.left = 21, 21, 21 }, nil, 0, "1 failed cycles not settled"},
		{"refused entry", impl.LockToken, lockRaceFailure{stage: lockStageEnter, id: "1:7", err: errNoPerm}, false,
			func(o *lockRaceOutcome) { o.acquired = 21 }, nil, 0, "1 calls refused by a server"},
		{"a holder inside, unaccounted", impl.LockToken, lockRaceFailure{stage: lockStageAcquire, err: errLost}, false,
			func(o *lockRaceOutcome) { o.stillInside = 1 }, []string{counted}, 1, "the probe's books do not add up"},
		{"a foreign delete", impl.LockNaive, lockRaceFailure{stage: lockStageAcquire, err: errLost}, false,
			func(o *lockRaceOutcome) { o.foreignDeletes, o.releasesRefused = 3, 0 }, []string{"no release deleted another holder's lock"}, 1, "3 foreign deletes"},
		{"a live overlap", impl.LockToken, lockRaceFailure{stage: lockStageAcquire, err: errLost}, false,
			func(o *lockRaceOutcome) { o.live = 1 }, []string{"never two holders inside on live leases"}, 1, "(1 on live leases"},
		{"a release refused by a restarting server", impl.LockRedsync, lockRaceFailure{stage: lockStageRelease, id: "1:7", err: errRefused}, false,
			func(o *lockRaceOutcome) { o.acquired, o.entered, o.left = 21, 21, 21 }, nil, 0, "1 calls refused by a server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := healthyLockRace(tc.strategy)
			tc.edit(&o)
			o.settle([]lockRaceFailure{tc.fail}, []bool{tc.inside}, impl.Classify)
			checkSummaryMatches(t, o.invariants(), o.summary(), tc.broken, tc.say, "")
			if o.settledOps != tc.settled {
				t.Errorf("settled %d, want %d", o.settledOps, tc.settled)
			}
		})
	}
}

// errRefused is a call refused by a server that is down: surely not
// applied there.
var errRefused = fmt.Errorf("goredis lock redsync: release %q: %w", "race", syscall.ECONNREFUSED)

// TestLockRaceLiveProven: a live overlap is proven independent of the
// failed operations for every lock that releases by compare-and-delete,
// not for the naive lock, whose lost DEL may have freed another's lock.
func TestLockRaceLiveProven(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		live     int64
		proven   bool
	}{
		{impl.LockRedsync, 4, true},
		{impl.LockToken, 1, true},
		{impl.LockNaive, 3, false},
		{impl.LockRedsync, 0, false}, // holds: nothing to prove
	} {
		o := healthyLockRace(tc.strategy)
		o.live = tc.live
		i := slices.IndexFunc(o.invariants(), func(inv result.Invariant) bool { return inv.Name == "never two holders inside on live leases" })
		if inv := o.invariants()[i]; inv.Proven != tc.proven || inv.Holds != (tc.live == 0) {
			t.Errorf("%s with %d live overlaps: %+v, want proven %v", tc.strategy, tc.live, inv, tc.proven)
		}
	}
}

// settleLocker is a lock whose settles answer what the test says.
type settleLocker struct {
	impl.Locker
	held bool
	err  error
	n    int
}

func (l *settleLocker) Settle(context.Context, impl.Lease) (bool, error) {
	l.n++
	return l.held, l.err
}

// TestLockLoadSettle: the load operation settles what failed with its
// outcome unknown, checks busy waits whose lease carries a token, and
// leaves alone what surely did not apply.
func TestLockLoadSettle(t *testing.T) {
	ctx := context.Background()
	fresh := impl.Lease{Name: "lock-0", Token: "t1", TTL: time.Second, Sent: time.Now()}
	stale := fresh
	stale.Sent = time.Now().Add(-2 * time.Second)
	lost := fmt.Errorf("%w %q after 3 attempts: %w (%w)", impl.ErrLockNotAcquired, "lock-0", context.DeadlineExceeded, errors.New("read tcp: i/o timeout"))
	busy := fmt.Errorf("%w %q after 3 attempts (%w): %w", impl.ErrLockNotAcquired, "lock-0", impl.ErrLockBusy, context.DeadlineExceeded)
	for _, tc := range []struct {
		name      string
		lease     impl.Lease
		err       error
		held      bool
		settleErr error
		class     string // of the error returned
		settles   int
		want      lockLoadTally
	}{
		{"lost, had taken the lock", fresh, lost, true, nil, impl.ClassTimeout, 1, lockLoadTally{acquireLost: 1, acquireLostHeld: 1, settled: 1}},
		{"lost, had not", fresh, lost, false, nil, impl.ClassTimeout, 1, lockLoadTally{acquireLost: 1, settled: 1}},
		{"lost, read too late to tell", stale, lost, false, nil, impl.ClassTimeout, 1, lockLoadTally{acquireLost: 1, unsettled: 1}},
		{"lost, the read failed", fresh, lost, false, errors.New("i/o timeout"), impl.ClassTimeout, 1, lockLoadTally{acquireLost: 1, unsettled: 1}},
		{"lost, no token (naive)", impl.Lease{Name: "lock-0"}, lost, false, nil, impl.ClassTimeout, 0, lockLoadTally{acquireLost: 1, unsettled: 1}},
		{"busy, checked", fresh, busy, false, nil, impl.ClassContention, 1, lockLoadTally{busyChecked: 1}},
		{"busy, but it held the token", fresh, busy, true, nil, impl.ClassTimeout, 1, lockLoadTally{busyChecked: 1, busyHeld: 1, settled: 1}},
		{"busy, no token", impl.Lease{Name: "lock-0"}, busy, false, nil, impl.ClassContention, 0, lockLoadTally{}},
		{"refused: not applied, not settled", fresh, errRefused, false, nil, impl.ClassRefused, 0, lockLoadTally{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &settleLocker{held: tc.held, err: tc.settleErr}
			s := lockLoadSettler{locker: l, classify: impl.Classify}
			var got lockLoadTally
			err := s.acquireFailed(ctx, &got, tc.lease, tc.err)
			if c := impl.Classify(err); c != tc.class {
				t.Errorf("error %v classed %s, want %s", err, c, tc.class)
			}
			if got != tc.want || l.n != tc.settles {
				t.Errorf("tally %+v after %d settles, want %+v after %d", got, l.n, tc.want, tc.settles)
			}
		})
	}
	t.Run("release lost", func(t *testing.T) {
		for _, held := range []bool{true, false} {
			l := &settleLocker{held: held}
			var got lockLoadTally
			_ = lockLoadSettler{locker: l, classify: impl.Classify}.releaseFailed(ctx, &got, fresh, errLost)
			want := lockLoadTally{releaseLost: 1, settled: 1}
			if held {
				want.releaseLostHeld = 1
			}
			if got != want {
				t.Errorf("held %v: tally %+v, want %+v", held, got, want)
			}
		}
	})
	t.Run("release refused by the lock", func(t *testing.T) {
		var got lockLoadTally
		err := lockLoadSettler{locker: &settleLocker{}, classify: impl.Classify}.releaseFailed(ctx, &got, fresh, impl.ErrLockNotHeld)
		if !errors.Is(err, impl.ErrLockNotHeld) || got != (lockLoadTally{refused: 1}) {
			t.Errorf("error %v, tally %+v", err, got)
		}
	})
}

// TestLockExpirySummaryAgrees breaks one figure of a healthy lock-expiry
// outcome at a time: the summary must say what the invariants say.
func TestLockExpirySummaryAgrees(t *testing.T) {
	healthy := func() lockExpiryOutcome {
		return lockExpiryOutcome{
			figures: map[string]float64{"acquisitions": 40}, ttl: 100 * time.Millisecond, paused: 4, overtaken: 4, refused: 4,
			entries: 40, writes: 40, rejected: 4, resourceFence: 44, finalValue: "44",
			audit: resourceAudit{firstStale: "none", maxKey: 44, lastKey: 44, lastValue: "44", fenceOrdered: true, maxFence: 44},
		}
	}
	for _, tc := range []struct {
		name   string
		edit   func(o *lockExpiryOutcome)
		broken []string
		say    string
	}{
		{"healthy", func(*lockExpiryOutcome) {}, nil, "0 stale writes landed, 4 rejected"},
		{"stale writes", func(o *lockExpiryOutcome) { o.audit.stale = 3 }, []string{"no stale write landed"}, "3 stale writes landed"},
		{"not the newest write last", func(o *lockExpiryOutcome) { o.audit.lastKey, o.audit.lastValue, o.finalValue = 43, "43", "43" },
			[]string{"resource ends with the newest holder's write"}, "ends with acquisition 43's write, not the newest (44)"},
		{"out of fencing order", func(o *lockExpiryOutcome) { o.audit.fenceOrdered = false },
			[]string{"resource holds writes in fencing order"}, "out of fencing order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := healthy()
			tc.edit(&o)
			checkSummaryMatches(t, o.invariants(), o.summary(), tc.broken, tc.say, "")
		})
	}
}

// TestLockExpirySettle: every failed cycle of a lock-expiry cell is
// settled against the resource's log (a lost write landed exactly when its
// epoch is there), except a naive release whose reply was lost; a failure
// that surely did not apply is a call refused, not settled.
func TestLockExpirySettle(t *testing.T) {
	for _, tc := range []struct {
		name           string
		strategy       string
		fail           lockExpiryFailure
		settled, wrote int64
		say            string
	}{
		{"acquire reply lost", impl.LockFenced, lockExpiryFailure{stage: lockStageAcquire, err: errLost}, 1, 0, "1 replies lost, 0 had written the resource"},
		{"epoch reply lost", impl.LockToken, lockExpiryFailure{stage: lockExpiryStageEpoch, err: errLost}, 1, 0, "1 replies lost, 0 had"},
		{"write reply lost, landed", impl.LockFenced, lockExpiryFailure{stage: lockExpiryStageWrite, epoch: 44, err: errLost}, 1, 1, "1 replies lost, 1 had written the resource"},
		{"write reply lost, not landed", impl.LockFenced, lockExpiryFailure{stage: lockExpiryStageWrite, epoch: 45, err: errLost}, 1, 0, "1 replies lost, 0 had written the resource"},
		{"token release lost", impl.LockToken, lockExpiryFailure{stage: lockStageRelease, epoch: 44, err: errLost}, 1, 0, "1 replies lost"},
		{"naive release lost", impl.LockNaive, lockExpiryFailure{stage: lockStageRelease, epoch: 44, err: errLost}, 0, 0, "1 failed cycles not settled"},
		{"refused write", impl.LockFenced, lockExpiryFailure{stage: lockExpiryStageWrite, epoch: 45, err: errNoPerm}, 0, 0, "1 calls refused by a server"},
		{"refused by a restarting server", impl.LockFenced, lockExpiryFailure{stage: lockStageAcquire, err: errRefused}, 0, 0, "1 calls refused by a server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := lockExpiryOutcome{
				figures: map[string]float64{"acquisitions": 40}, ttl: 100 * time.Millisecond, entries: 2, writes: 2, finalValue: "44",
				audit:         resourceAudit{firstStale: "none", maxKey: 44, lastKey: 44, lastValue: "44", fenceOrdered: true, maxFence: 44, values: []string{"43", "44"}},
				resourceFence: 44,
			}
			o.settle([]lockExpiryFailure{tc.fail}, tc.strategy == impl.LockNaive, impl.Classify)
			checkSummaryMatches(t, o.invariants(), o.summary(), nil, tc.say, "")
			if o.settledOps != tc.settled || o.lostLanded != tc.wrote || o.failed != 1 {
				t.Errorf("settled %d (want %d), landed %d (want %d), failed %d", o.settledOps, tc.settled, o.lostLanded, tc.wrote, o.failed)
			}
		})
	}
}

// TestLockHistoryLibraries: a library lock issues no fencing token and
// takes the lock in its own retry loop: its cell says why no history was
// checked (nothing with history off); naive, token and fenced record.
func TestLockHistoryLibraries(t *testing.T) {
	env := testEnv(t, impl.GoRedis)
	opts := impl.LockOptions{TTL: time.Second}.WithDefaults()
	for _, strategy := range []string{impl.LockRedsync, impl.LockRedislock, impl.LockRueidislock} {
		h := newLockHistory(env, strategy, opts, "race", 4, 10)
		if got := h.result(t.Context(), env.Common.History); got == nil || got.Result != result.HistoryNotChecked || !strings.Contains(got.Reason, "gives no fencing token") {
			t.Fatalf("%s: history %+v, want not-checked saying why", strategy, got)
		}
		if got := h.result(t.Context(), histcheck.Options{Mode: histcheck.ModeOff}); got != nil {
			t.Fatalf("%s with history off: %+v", strategy, got)
		}
	}
	for _, strategy := range impl.LockStrategies() {
		if h := newLockHistory(env, strategy, opts, "race", 4, 10); h.rec == nil || h.pause == nil {
			t.Fatalf("%s records no history", strategy)
		}
	}
}
