package impl

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Duplicate-submission guard strategies.
const (
	// DedupeNaive is the seed's prevent_brush: SETEX a marker on the
	// fingerprint and never check one, so every repeat passes.
	DedupeNaive = "naive"
	// DedupeSetNX is SET fingerprint id NX PX window GET in one command:
	// the first submission stores its id and passes, every repeat within the
	// window is refused and told the original's id.
	DedupeSetNX = "dedupe"
)

// DedupeStrategies lists the guard strategies in display order.
func DedupeStrategies() []string { return []string{DedupeNaive, DedupeSetNX} }

// MaxSubmissionID is the longest submission id, in bytes.
const MaxSubmissionID = 512

// Submission is the guard's answer to one submission.
type Submission struct {
	// Accepted is true when this submission is the one to process.
	Accepted bool
	// OriginalID is the id of the submission that holds the fingerprint:
	// this submission's own id when it was accepted, the first one's when
	// it was refused as a repeat.
	OriginalID string
}

// Deduper is the duplicate-submission family: within a window, one
// submission per request fingerprint passes.
type Deduper interface {
	// Submit presents submission id (non-empty, at most MaxSubmissionID
	// bytes) of the request whose fingerprint is fp (see Fingerprint).
	Submit(ctx context.Context, fp, id string) (Submission, error)
}

// DedupeOptions tunes a guard.
type DedupeOptions struct {
	// Keys is the run's keyspace; required.
	Keys Keyspace
	// Window is how long a fingerprint is remembered (default 10 s; whole
	// milliseconds, at least 1 ms).
	Window time.Duration
}

// WithDefaults returns o with zero fields set to their defaults.
func (o DedupeOptions) WithDefaults() DedupeOptions {
	if o.Window == 0 {
		o.Window = 10 * time.Second
	}
	return o
}

// Validate checks o after WithDefaults.
func (o DedupeOptions) Validate() error {
	switch {
	case o.Keys.Prefix() == "":
		return fmt.Errorf("dedupe: DedupeOptions.Keys is required")
	case o.Window < time.Millisecond || o.Window%time.Millisecond != 0:
		return fmt.Errorf("dedupe: window %s must be a whole number of milliseconds, at least 1 ms", o.Window)
	}
	return nil
}

// ValidateSubmissionID returns an error wrapping ErrInvalidID unless id is
// 1..MaxSubmissionID bytes.
func ValidateSubmissionID(id string) error {
	if id == "" || len(id) > MaxSubmissionID {
		return fmt.Errorf("%w: submission id of %d bytes (must be 1..%d)", ErrInvalidID, len(id), MaxSubmissionID)
	}
	return nil
}

// DedupeBackend is implemented by backends that offer the guard family.
type DedupeBackend interface {
	// Deduper returns the named strategy (one of DedupeStrategies).
	Deduper(strategy string, opts DedupeOptions) (Deduper, error)
}

// DedupeKey is the guard key of fingerprint fp: prefix + "dedupe:{<fp>}",
// a string holding the id of the submission that passed (naive: the last
// one written), expiring after the window.
func DedupeKey(k Keyspace, fp string) string { return k.Tagged("dedupe", fp) }

// Fingerprint returns the hex SHA-256 of fields, each length-prefixed so
// that ("ab", "c") and ("a", "bc") differ: the identity of a request (user,
// order, amount, ...) independent of which submission carries it.
func Fingerprint(fields ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}
