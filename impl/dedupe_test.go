package impl_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

func TestFingerprint(t *testing.T) {
	a := impl.Fingerprint("user-1", "order-7", "100.00")
	if a != impl.Fingerprint("user-1", "order-7", "100.00") {
		t.Error("Fingerprint is not deterministic")
	}
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("Fingerprint = %q, want 64 hex digits", a)
	}
	distinct := [][]string{{"ab", "c"}, {"a", "bc"}, {"abc"}, {"abc", ""}, {}, {""}}
	seen := map[string][]string{}
	for _, f := range distinct {
		fp := impl.Fingerprint(f...)
		if prev, dup := seen[fp]; dup {
			t.Errorf("Fingerprint(%q) == Fingerprint(%q)", f, prev)
		}
		seen[fp] = f
	}
}

func TestDedupeOptions(t *testing.T) {
	ks := impl.MustKeyspace("pb:t:")
	if w := (impl.DedupeOptions{Keys: ks}).WithDefaults().Window; w != 10*time.Second {
		t.Errorf("default window %s, want 10s", w)
	}
	for _, tc := range []struct {
		o  impl.DedupeOptions
		ok bool
	}{
		{impl.DedupeOptions{Keys: ks}, true},
		{impl.DedupeOptions{Keys: ks, Window: time.Millisecond}, true},
		{impl.DedupeOptions{}, false},
		{impl.DedupeOptions{Keys: ks, Window: -time.Second}, false},
		{impl.DedupeOptions{Keys: ks, Window: time.Microsecond}, false},
		{impl.DedupeOptions{Keys: ks, Window: time.Second + time.Microsecond}, false},
	} {
		if err := tc.o.WithDefaults().Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tc.o, err, tc.ok)
		}
	}
	for id, ok := range map[string]bool{"a": true, strings.Repeat("x", impl.MaxSubmissionID): true, "": false, strings.Repeat("x", impl.MaxSubmissionID+1): false} {
		if err := impl.ValidateSubmissionID(id); (err == nil) != ok || (err != nil && !errors.Is(err, impl.ErrInvalidID)) {
			t.Errorf("ValidateSubmissionID(%d bytes) = %v, want ok=%v", len(id), err, ok)
		}
	}
	if got := impl.DedupeKey(ks, "f{p}"); got != "pb:t:dedupe:{f%7Bp%7D}" {
		t.Errorf("DedupeKey = %q", got)
	}
}
