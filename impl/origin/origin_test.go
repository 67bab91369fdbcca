package origin_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/origin"
)

func TestVersions(t *testing.T) {
	ctx := context.Background()
	o := origin.New(origin.Options{})
	if v := o.Version("a"); v != 0 {
		t.Fatalf("Version of a missing record = %d", v)
	}
	if r := o.Put("a", "x"); r != (impl.Record{ID: "a", Version: 1, Value: "x"}) {
		t.Fatalf("Put = %+v", r)
	}
	r, err := o.Store(ctx, "a", "y")
	if err != nil || r != (impl.Record{ID: "a", Version: 2, Value: "y"}) {
		t.Fatalf("Store = %+v, %v", r, err)
	}
	got, err := o.Load(ctx, "a")
	if err != nil || got != r {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, r)
	}
	if _, err := o.Load(ctx, "b"); !errors.Is(err, impl.ErrRecordNotFound) {
		t.Fatalf("Load(missing) error = %v", err)
	}
	if n := o.Loads(); n != 2 {
		t.Fatalf("Loads = %d, want 2 (failed loads count)", n)
	}
	w1, ok1 := o.WrittenAt("a", 1)
	w2, ok2 := o.StaleSince("a", 1)
	if !ok1 || !ok2 || w2.Before(w1) {
		t.Fatalf("WrittenAt(1) = %v %v, StaleSince(1) = %v %v", w1, ok1, w2, ok2)
	}
	if _, ok := o.StaleSince("a", 2); ok {
		t.Fatalf("StaleSince(current version) ok")
	}
	for _, v := range []int64{0, -1, 3} {
		if _, ok := o.WrittenAt("a", v); ok {
			t.Fatalf("WrittenAt(%d) ok", v)
		}
	}
}

// TestLoadSnapshot: a load answers with the record as it was when the load
// started, even when a write lands during its latency.
func TestLoadSnapshot(t *testing.T) {
	ctx := context.Background()
	o := origin.New(origin.Options{LoadLatency: 100 * time.Millisecond})
	o.Put("a", "old")
	done := make(chan impl.Record, 1)
	go func() {
		r, err := o.Load(ctx, "a")
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	for o.Loads() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := o.Store(ctx, "a", "new"); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Version != 1 || r.Value != "old" {
		t.Fatalf("slow load = %+v, want version 1 \"old\"", r)
	}
}

func TestClientLog(t *testing.T) {
	ctx := context.Background()
	o := origin.New(origin.Options{})
	o.Put("a", "x")
	var wg sync.WaitGroup
	for c := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := o.Client(c)
			for range c + 1 {
				if _, err := v.Load(ctx, "a"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if _, err := o.Load(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	per := map[int]int{}
	for _, l := range o.LoadLog() {
		if l.ID != "a" || l.Version != 1 || l.At.IsZero() {
			t.Errorf("log entry %+v", l)
		}
		per[l.Client]++
	}
	if per[0] != 1 || per[1] != 2 || per[2] != 3 || per[-1] != 1 || o.Loads() != 7 {
		t.Fatalf("loads per client %v, total %d", per, o.Loads())
	}
	if r, err := o.Client(5).Store(ctx, "a", "y"); err != nil || r.Version != 2 || o.Version("a") != 2 {
		t.Fatalf("Store through a view = %+v, %v", r, err)
	}
}

func TestContext(t *testing.T) {
	o := origin.New(origin.Options{LoadLatency: time.Hour, StoreLatency: time.Hour})
	o.Put("a", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := o.Load(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load error = %v, want the deadline", err)
	}
	ctx2, cancel3 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel3()
	if _, err := o.Store(ctx2, "a", "y"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Store error = %v, want the deadline", err)
	}
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := o.Store(canceled, "a", "z"); err == nil || o.Version("a") != 2 {
		t.Fatalf("Store with a canceled context: %v, version %d (the slow store applied, the canceled one not)", err, o.Version("a"))
	}
}
