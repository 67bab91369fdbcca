package impl

import (
	"errors"
	"strconv"
	"testing"
)

// FuzzParseRetries checks ParseRetries on any string: it never panics; it
// accepts exactly "", "library" and decimal digits worth 0 to MaxRetries,
// and refuses everything else with an error wrapping ErrInvalidConnConfig;
// an accepted setting's String is canonical and parses back to the same
// setting; the only unset setting is "", the only library one "library";
// a numeric setting's Count is the digits' value and RetryCount builds the
// same setting.
func FuzzParseRetries(f *testing.F) {
	for _, s := range []string{"", "0", "library", "3", "1000", "1001", "007", "-1", "+1", " 2", "LIBRARY", "1e3", "\x00", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRetries(s)
		valid := s == "" || s == "library"
		if !valid {
			digits := len(s) > 0
			for i := 0; i < len(s); i++ {
				digits = digits && s[i] >= '0' && s[i] <= '9'
			}
			if digits {
				// No sign nor space, so Atoi reads exactly the digits
				// (or overflows: then too many).
				n, aerr := strconv.Atoi(s)
				valid = aerr == nil && n <= MaxRetries
			}
		}
		if !valid {
			if err == nil {
				t.Fatalf("ParseRetries(%q) = %#v, want an error", s, r)
			}
			if !errors.Is(err, ErrInvalidConnConfig) {
				t.Fatalf("ParseRetries(%q) error %v does not wrap ErrInvalidConnConfig", s, err)
			}
			if r != (Retries{}) {
				t.Fatalf("ParseRetries(%q) = %#v with an error, want the zero Retries", s, r)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseRetries(%q): %v", s, err)
		}
		if r.IsSet() != (s != "") || r.Library() != (s == "library") {
			t.Fatalf("ParseRetries(%q) = %#v: IsSet %v, Library %v", s, r, r.IsSet(), r.Library())
		}
		if r.Count() < 0 || r.Count() > MaxRetries || (r.Library() || !r.IsSet()) && r.Count() != 0 {
			t.Fatalf("ParseRetries(%q).Count() = %d", s, r.Count())
		}
		back, err := ParseRetries(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRetries(%q).String() = %q parses to %#v, %v; want %#v", s, r.String(), back, err, r)
		}
		if again, _ := ParseRetries(back.String()); again.String() != r.String() {
			t.Fatalf("String of %q is not canonical: %q then %q", s, r.String(), again.String())
		}
		if r.IsSet() && !r.Library() {
			if n, _ := strconv.Atoi(s); n != r.Count() {
				t.Fatalf("ParseRetries(%q).Count() = %d, want %d", s, r.Count(), n)
			}
			if c, err := RetryCount(r.Count()); err != nil || c != r {
				t.Fatalf("RetryCount(%d) = %#v, %v; want %#v", r.Count(), c, err, r)
			}
			if r.String() != strconv.Itoa(r.Count()) {
				t.Fatalf("String() = %q, want %d", r.String(), r.Count())
			}
		}
	})
}
