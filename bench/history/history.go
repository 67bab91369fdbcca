// Package history records what each client of a scenario was told: one
// Entry per operation — the client, its call and return times on the
// monotonic clock, its input and output, and whether the outcome is
// unknown (the reply was lost). The entries are checked for
// linearizability afterwards (scenarios/histcheck).
//
// Each worker appends to its own Log, sized before the run: nothing is
// shared between workers and nothing is allocated on the per-operation
// path. A Log that is full counts what it could not keep (Overflow), and a
// history with an overflow is not checked (it is incomplete). A nil *Log
// records nothing, so a scenario run with history off pays one nil check
// per operation.
package history

import (
	"time"
	"unsafe"
)

// Entry is one operation as its client saw it. It holds no pointer, so
// the garbage collector never scans a buffer of them. The meaning of Kind,
// Key, In, In2, Out and Out2 is the model's (scenarios/histcheck).
type Entry struct {
	// Call and Return are the operation's start and end, in nanoseconds
	// since the recorder's origin (monotonic clock). Return is the time
	// the client learned the outcome, also for an Unknown one.
	Call, Return int64
	// Key names the partition the operation belongs to (an item, an order,
	// a lock), as the model numbers them.
	Key int64
	// In and In2 are the operation's input (a quantity, an id, a token).
	In, In2 int64
	// Out and Out2 are its output (the remaining stock, a state, a
	// token).
	Out, Out2 int64
	// Client is the client (worker) that ran it.
	Client int32
	// Kind is the operation, as the model numbers them.
	Kind uint8
	// OK is the operation's success (false: refused).
	OK bool
	// Flag is a model-specific mark (a purchase answered from its record).
	Flag bool
	// Unknown says the outcome is unknown: the reply was lost (a time-out,
	// a dropped connection), so the operation may or may not have
	// happened, and Out, Out2 and OK mean nothing.
	Unknown bool
}

// Recorder holds one Log per client, all measured from one origin.
type Recorder struct {
	origin time.Time
	logs   []Log
}

// Options size a Recorder.
type Options struct {
	// Clients is the number of Logs (one per worker, plus any observer
	// such as a sampler).
	Clients int
	// PerClient is the room each Log reserves, in entries.
	PerClient int
	// Observers are further logs, after the clients' (Log(Clients),
	// Log(Clients+1), ...), of PerObserver entries each: a sampler's.
	Observers, PerObserver int
}

// New returns a recorder of opts.Clients logs of opts.PerClient entries
// each and opts.Observers of opts.PerObserver, all allocated now; its
// origin is now.
func New(opts Options) *Recorder {
	clients := max(opts.Clients, 0)
	r := &Recorder{origin: time.Now(), logs: make([]Log, clients+max(opts.Observers, 0))}
	for i := range r.logs {
		room := opts.PerClient
		if i >= clients {
			room = opts.PerObserver
		}
		r.logs[i] = Log{origin: r.origin, client: int32(i), buf: prefaulted(max(room, 0))}
	}
	return r
}

// Log returns client i's log, or nil (recording nothing) when r is nil or
// i is out of range.
func (r *Recorder) Log(i int) *Log {
	if r == nil || i < 0 || i >= len(r.logs) {
		return nil
	}
	return &r.logs[i]
}

// prefaulted returns an empty buffer of room entries whose memory has
// been written once, so that the operations do not pay the page faults of
// first touching it.
func prefaulted(room int) []Entry {
	buf := make([]Entry, room)
	const perPage = 4096 / int(unsafe.Sizeof(Entry{}))
	for i := 0; i < room; i += perPage {
		buf[i].Kind = 0 // a write: the page is faulted in now
	}
	return buf[:0]
}

// Origin is the time every Entry's Call and Return count from.
func (r *Recorder) Origin() time.Time { return r.origin }

// Entries returns every log's entries, client by client. It must be called
// after the workers stopped.
func (r *Recorder) Entries() []Entry {
	if r == nil {
		return nil
	}
	n := 0
	for i := range r.logs {
		n += len(r.logs[i].buf)
	}
	out := make([]Entry, 0, n)
	for i := range r.logs {
		out = append(out, r.logs[i].buf...)
	}
	return out
}

// Overflow is how many entries the logs could not keep, all together.
func (r *Recorder) Overflow() int64 {
	if r == nil {
		return 0
	}
	var n int64
	for i := range r.logs {
		n += r.logs[i].overflow
	}
	return n
}

// Log is one client's history, appended to by that client only.
type Log struct {
	origin   time.Time
	buf      []Entry
	overflow int64
	client   int32
	_        [64]byte // its own cache line: workers' logs sit side by side
}

// Now returns the time since the origin, in nanoseconds, on the monotonic
// clock (0 on a nil log).
func (l *Log) Now() int64 {
	if l == nil {
		return 0
	}
	return int64(time.Since(l.origin))
}

// Room is how many more entries the log can keep (0 on a nil log). An
// observer whose operations have no effect, such as a sampler's reads, may
// stop recording when it is 0 instead of overflowing: dropping a read
// leaves a history that is linearizable if the whole one was.
func (l *Log) Room() int {
	if l == nil {
		return 0
	}
	return cap(l.buf) - len(l.buf)
}

// Add appends e, its Client set to the log's, when there is room, and
// counts it as an overflow otherwise. It never allocates. A nil log
// ignores it.
func (l *Log) Add(e Entry) {
	if l == nil {
		return
	}
	if len(l.buf) == cap(l.buf) {
		l.overflow++
		return
	}
	e.Client = l.client
	l.buf = append(l.buf, e)
}
