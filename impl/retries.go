package impl

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// ErrInvalidConnConfig is wrapped by the errors of ParseRetries and
// ConnConfig.Validate: a connection setting paybench cannot use, whatever
// the server.
var ErrInvalidConnConfig = errors.New("invalid connection setting")

// MaxRetries is the largest number of retries ParseRetries accepts: both
// client libraries back off between retries, up to 1 s each, so more
// would hold one failed command for many minutes.
const MaxRetries = 1000

// Retries is a client retry setting, as ParseRetries reads it from
// ConnConfig.Retries: unset, the library's own default, or a number of
// retries (0: none). The zero value is unset.
type Retries struct {
	set     bool
	library bool
	n       int
}

// NoRetries is the setting "0": a failed command is reported, never
// re-sent.
var NoRetries = Retries{set: true}

// LibraryRetries is the setting "library": each client library's own
// default.
var LibraryRetries = Retries{set: true, library: true}

// RetryCount returns the setting "n": n retries after the first attempt (0:
// none). n must be from 0 to MaxRetries.
func RetryCount(n int) (Retries, error) {
	if n < 0 || n > MaxRetries {
		return Retries{}, fmt.Errorf("%w: %d retries: want 0 to %d", ErrInvalidConnConfig, n, MaxRetries)
	}
	return Retries{set: true, n: n}, nil
}

// ParseRetries reads a retry setting:
//
//   - "" leaves it unset: the URL's max_retries when it has one, else no
//     retries (see ConnConfig.Retries);
//   - "0" means no retries;
//   - "library" means the client library's own default;
//   - "N", decimal digits from 1 to MaxRetries, means N retries after the
//     first attempt.
//
// Anything else (a sign, spaces, another spelling) is an error wrapping
// ErrInvalidConnConfig. String gives back the canonical spelling.
func ParseRetries(s string) (Retries, error) {
	switch s {
	case "":
		return Retries{}, nil
	case "library":
		return LibraryRetries, nil
	}
	// Digits only: strconv.Atoi would also take a sign.
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Retries{}, retriesError(s)
		}
		n = n*10 + int(c-'0')
		if n > MaxRetries {
			return Retries{}, retriesError(s)
		}
	}
	return Retries{set: true, n: n}, nil
}

func retriesError(s string) error {
	return fmt.Errorf("%w: retries %q: want 0 (no retries), library (the client library's default) or a number of retries from 1 to %d",
		ErrInvalidConnConfig, s, MaxRetries)
}

// IsSet reports whether the setting was given (not "").
func (r Retries) IsSet() bool { return r.set }

// Library reports whether the setting is "library".
func (r Retries) Library() bool { return r.library }

// Count returns the number of retries of a numeric setting; 0 when the
// setting is "library" or unset.
func (r Retries) Count() int { return r.n }

// String returns the canonical spelling ParseRetries reads: "", "library"
// or the number.
func (r Retries) String() string {
	switch {
	case !r.set:
		return ""
	case r.library:
		return "library"
	}
	return strconv.Itoa(r.n)
}

// Where a backend's retry setting came from, as RetrySetting reports it.
const (
	// RetriesFromConfig: ConnConfig.Retries.
	RetriesFromConfig = "config"
	// RetriesFromURL: the URL's max_retries query parameter.
	RetriesFromURL = "url"
	// RetriesFromDefault: paybench's default, no retries.
	RetriesFromDefault = "default"
)

// RetrySetting resolves the retry setting a backend applies, and where it
// came from: c.Retries when it is set (it wins over the URL); else the
// URL's max_retries query parameter when it has a value; else no retries
// (RetriesFromDefault).
//
// max_retries is read the same way for every backend: a number of
// retries, where 0 and -1 both mean none. (go-redis's own ParseURL takes
// 0 for "its default", 3 retries, and only -1 for none; rueidis's takes 0
// for none and ignores any other value. A correctness harness reads the
// number as written.) A max_retries that is not an integer from -1 to
// MaxRetries is an error wrapping ErrInvalidConnConfig.
func (c ConnConfig) RetrySetting() (r Retries, from string, err error) {
	r, err = ParseRetries(c.Retries)
	if err != nil {
		return Retries{}, "", err
	}
	if r.IsSet() {
		return r, RetriesFromConfig, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return Retries{}, "", fmt.Errorf("%w: URL: %w", ErrInvalidConnConfig, err)
	}
	v := u.Query()["max_retries"]
	if len(v) == 0 || v[len(v)-1] == "" { // the last value counts, as in go-redis
		return NoRetries, RetriesFromDefault, nil
	}
	s := v[len(v)-1]
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n > MaxRetries {
		return Retries{}, "", fmt.Errorf("%w: URL max_retries=%q: want -1 or 0 (no retries) or a number of retries up to %d",
			ErrInvalidConnConfig, s, MaxRetries)
	}
	return Retries{set: true, n: max(n, 0)}, RetriesFromURL, nil
}

// Validate checks what can be checked without a server: Retries (and the
// URL's max_retries, see RetrySetting) and time-outs that are not
// negative. Every backend's Opener calls it; a command line may call it
// to reject a bad value before any work. Its errors wrap
// ErrInvalidConnConfig.
func (c ConnConfig) Validate() error {
	if _, _, err := c.RetrySetting(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read time-out", c.ReadTimeout}, {"dial time-out", c.DialTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s %v: want 0 (the default) or more", ErrInvalidConnConfig, d.name, d.v)
		}
	}
	return c.validateWait()
}

// Keys of Backend.Settings that every backend reports about its
// connection settings, so that two backends compare side by side.
const (
	// SettingRetries: "0", "N", or "library (N)" / "library (unbounded)"
	// for a library's own default.
	SettingRetries = "retries"
	// SettingRetriesFrom: RetriesFromConfig, RetriesFromURL or
	// RetriesFromDefault.
	SettingRetriesFrom = "retries_from"
	// SettingRetriedCommands: which commands a retry re-sends, one of
	// RetriedNone, RetriedReadOnly, RetriedAll.
	SettingRetriedCommands = "retried_commands"
	// SettingReadTimeout: how long the client waits for one reply (a Go
	// duration).
	SettingReadTimeout = "read_timeout"
	// SettingDialTimeout: how long the client waits to establish one
	// connection (a Go duration).
	SettingDialTimeout = "dial_timeout"
	// SettingCluster: on a Redis Cluster, the library's cluster client
	// (absent on a single server).
	SettingCluster = "cluster"
)

// Values of SettingRetriedCommands.
const (
	// RetriedNone: nothing is re-sent; a failed command is reported.
	RetriedNone = "none"
	// RetriedReadOnly: only commands the library knows to be read-only
	// are re-sent; a write is reported failed.
	RetriedReadOnly = "read-only"
	// RetriedAll: every command is re-sent after a network error or a
	// time-out, writes included: a write whose reply was lost may apply
	// twice.
	RetriedAll = "all, writes too (a write whose reply was lost may apply twice)"
)
