package history

import (
	"testing"
)

func TestRecorder(t *testing.T) {
	r := New(Options{Clients: 2, PerClient: 2, Observers: 1, PerObserver: 3})
	for _, tc := range []struct {
		log  int
		adds int
		kept int
	}{
		{0, 3, 2}, // one overflows
		{1, 1, 1},
		{2, 3, 3}, // the observer's room
	} {
		l := r.Log(tc.log)
		for i := range tc.adds {
			l.Add(Entry{Call: l.Now(), Return: l.Now(), In: int64(i), Client: 77})
		}
		if got := len(l.buf); got != tc.kept {
			t.Errorf("log %d kept %d, want %d", tc.log, got, tc.kept)
		}
		for _, e := range l.buf {
			if e.Client != int32(tc.log) {
				t.Errorf("log %d: entry of client %d", tc.log, e.Client)
			}
			if e.Return < e.Call {
				t.Errorf("log %d: returned %d before its call %d", tc.log, e.Return, e.Call)
			}
		}
	}
	if r.Log(2).Room() != 0 || r.Log(1).Room() != 1 {
		t.Errorf("room: %d, %d", r.Log(2).Room(), r.Log(1).Room())
	}
	if got := len(r.Entries()); got != 6 {
		t.Errorf("%d entries, want 6", got)
	}
	if got := r.Overflow(); got != 1 {
		t.Errorf("overflow %d, want 1", got)
	}
	if r.Log(3) != nil || r.Log(-1) != nil {
		t.Error("a log out of range")
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	l := r.Log(0)
	l.Add(Entry{})
	if l.Now() != 0 || l.Room() != 0 || r.Entries() != nil || r.Overflow() != 0 {
		t.Fatal("a nil recorder recorded something")
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	r := New(Options{Clients: 1, PerClient: 1000})
	l := r.Log(0)
	allocs := testing.AllocsPerRun(500, func() {
		l.Add(Entry{Call: l.Now(), Return: l.Now(), In: 1, OK: true, Out: 7})
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per recorded operation", allocs)
	}
}

// BenchmarkRecord is what recording costs one operation: two clock reads
// (call and return) and the append to the worker's own buffer.
func BenchmarkRecord(b *testing.B) {
	r := New(Options{Clients: 1, PerClient: b.N})
	l := r.Log(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		call := l.Now()
		l.Add(Entry{Kind: 1, Call: call, Return: l.Now(), In: 1, In2: int64(i), OK: true, Out: 7})
	}
}

// BenchmarkRecordParallel records from every P at once, each into its own
// log, as the workers of a cell do.
func BenchmarkRecordParallel(b *testing.B) {
	const clients = 64
	r := New(Options{Clients: clients, PerClient: b.N/clients + b.N})
	var next int32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu := int(atomicAdd(&next))
		l := r.Log(mu % clients)
		for pb.Next() {
			call := l.Now()
			l.Add(Entry{Kind: 1, Call: call, Return: l.Now(), In: 1, OK: true, Out: 7})
		}
	})
}
