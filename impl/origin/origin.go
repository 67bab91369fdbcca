// Package origin is an in-process stand-in for the database behind a
// cache: the system of record the cache-aside strategies load from on a
// miss and that writes update first. It is NOT a database and stores
// nothing durably; it exists so that cache scenarios can count every load
// the cache causes, hold a version per record to tell a stale cached value
// from a current one, and make loads slow on purpose, as a real query is.
//
// A load reads the record when it starts and answers after the configured
// latency, as a query's result reflects the data when the query ran: a
// write that lands during a load is not in its answer. That is what makes
// the classic cache-aside race (a slow reader puts the old value back after
// the writer invalidated the entry) reproducible.
package origin

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paybench/paybench/impl"
)

// Options tunes an Origin.
type Options struct {
	// LoadLatency is how long every load takes (0: answers at once).
	LoadLatency time.Duration
	// StoreLatency is how long every write takes (0: at once). The write
	// is applied when it starts.
	StoreLatency time.Duration
}

// Load is one load the origin served, kept in its log.
type Load struct {
	// At is when the load started.
	At time.Time
	// ID is the record loaded.
	ID string
	// Client is the tag of the view that loaded (Origin.Client), -1 for
	// loads made through the Origin itself.
	Client int
	// Version is the version the load answered with.
	Version int64
}

// Origin is the stand-in database. It is safe for concurrent use.
type Origin struct {
	opts  Options
	loads atomic.Int64

	mu      sync.RWMutex
	records map[string]*record
	log     []Load
}

// record is one record and the time each of its versions was written:
// written[v-1] is when version v was.
type record struct {
	value   string
	written []time.Time
}

// New returns an empty origin.
func New(opts Options) *Origin {
	return &Origin{opts: opts, records: map[string]*record{}}
}

// Compile-time check: an Origin is what the cache loads from.
var _ impl.Origin = (*Origin)(nil)

// Put writes value as id's next version immediately, without latency or
// context: it seeds records before a run.
func (o *Origin) Put(id, value string) impl.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.put(id, value, time.Now())
}

func (o *Origin) put(id, value string, now time.Time) impl.Record {
	r := o.records[id]
	if r == nil {
		r = &record{}
		o.records[id] = r
	}
	r.value = value
	r.written = append(r.written, now)
	return impl.Record{ID: id, Version: int64(len(r.written)), Value: value}
}

// Load reads id as it is now, then waits LoadLatency (or until ctx ends)
// before answering. Every call counts as a load, the failed ones too.
func (o *Origin) Load(ctx context.Context, id string) (impl.Record, error) {
	return o.load(ctx, id, -1)
}

func (o *Origin) load(ctx context.Context, id string, client int) (impl.Record, error) {
	now := time.Now()
	o.loads.Add(1)
	o.mu.Lock()
	r := o.records[id]
	var rec impl.Record
	if r != nil {
		rec = impl.Record{ID: id, Version: int64(len(r.written)), Value: r.value}
	}
	o.log = append(o.log, Load{At: now, ID: id, Client: client, Version: rec.Version})
	o.mu.Unlock()
	if err := wait(ctx, o.opts.LoadLatency); err != nil {
		return impl.Record{}, fmt.Errorf("origin: load %q: %w", id, err)
	}
	if r == nil {
		return impl.Record{}, fmt.Errorf("origin: load %q: %w", id, impl.ErrRecordNotFound)
	}
	return rec, nil
}

// Store writes value as id's next version (the first write is version
// 1), then waits StoreLatency (or until ctx ends) before answering.
func (o *Origin) Store(ctx context.Context, id, value string) (impl.Record, error) {
	if err := ctx.Err(); err != nil {
		return impl.Record{}, fmt.Errorf("origin: store %q: %w", id, err)
	}
	o.mu.Lock()
	rec := o.put(id, value, time.Now())
	o.mu.Unlock()
	if err := wait(ctx, o.opts.StoreLatency); err != nil {
		return rec, fmt.Errorf("origin: store %q: %w", id, err)
	}
	return rec, nil
}

// Loads returns the number of loads served so far.
func (o *Origin) Loads() int64 { return o.loads.Load() }

// LoadLog returns a copy of every load served so far, in order.
func (o *Origin) LoadLog() []Load {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return append([]Load(nil), o.log...)
}

// Version returns id's current version (0 when it was never written).
func (o *Origin) Version(id string) int64 {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if r := o.records[id]; r != nil {
		return int64(len(r.written))
	}
	return 0
}

// WrittenAt returns when version v of id was written; ok is false when
// there is no such version.
func (o *Origin) WrittenAt(id string, v int64) (at time.Time, ok bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	r := o.records[id]
	if r == nil || v < 1 || v > int64(len(r.written)) {
		return time.Time{}, false
	}
	return r.written[v-1], true
}

// StaleSince returns, for a value of id at version v, when it became stale:
// when version v+1 was written. ok is false while v is still current.
func (o *Origin) StaleSince(id string, v int64) (at time.Time, ok bool) {
	return o.WrittenAt(id, v+1)
}

// Client returns a view of the origin whose loads are logged with the tag
// client, so that loads can be told apart per application instance. Writes
// go to the same records.
func (o *Origin) Client(client int) impl.Origin { return &view{o: o, client: client} }

// view tags the loads of one client.
type view struct {
	o      *Origin
	client int
}

func (v *view) Load(ctx context.Context, id string) (impl.Record, error) {
	return v.o.load(ctx, id, v.client)
}

func (v *view) Store(ctx context.Context, id, value string) (impl.Record, error) {
	return v.o.Store(ctx, id, value)
}

// wait pauses d, or less when ctx ends first (impl.Sleep); with no
// latency (d <= 0) it still reports an ended ctx, unlike impl.Sleep.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	return impl.Sleep(ctx, d)
}
