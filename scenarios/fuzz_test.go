package scenarios

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseRange checks the --quantity parser: an error is one line; a
// range has lo <= hi, both >= 0, and reparses from its canonical spelling
// ("N" or "MIN-MAX") to the same range.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"1", "3", "1-4", " 2 - 5 ", "0", "0-0", "9223372036854775807", "+5", "+1-+3",
		"", "-", "-5", "5-", "4-1", "1--3", "1-2-3", "x", "1.5", "１", "9223372036854775808", "0x10", "1_000", "1-\n2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := parseRange(s)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || !strings.Contains(msg, "N or MIN-MAX") {
				t.Fatalf("parseRange(%q) error %q: want one line saying the syntax", s, msg)
			}
			return
		}
		if lo < 0 || hi < lo {
			t.Fatalf("parseRange(%q) = %d, %d", s, lo, hi)
		}
		canon := strconv.FormatInt(lo, 10)
		if hi != lo {
			canon += "-" + strconv.FormatInt(hi, 10)
		}
		lo2, hi2, err := parseRange(canon)
		if err != nil || lo2 != lo || hi2 != hi {
			t.Fatalf("parseRange(%q) = %d, %d; its spelling %q reparses as %d, %d, %v", s, lo, hi, canon, lo2, hi2, err)
		}
		// Oversell.Validate takes the range or says why not, in one line.
		o := newOversell()
		o.quantity = s
		if err := o.Validate(); err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("Validate with --quantity %q: error %q spans lines", s, msg)
			}
		} else if o.QuantityMin != lo || o.QuantityMax != hi {
			t.Fatalf("Validate with --quantity %q: %d-%d, want %d-%d", s, o.QuantityMin, o.QuantityMax, lo, hi)
		}
	})
}
