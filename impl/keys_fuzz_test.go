package impl

import (
	"strconv"
	"strings"
	"testing"
)

// unescape inverts Escape; ok is false for a string Escape cannot produce.
func unescape(s string) (string, bool) {
	if s == "%" {
		return "", true
	}
	if s == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if needsEscape(c) {
				return "", false
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || !needsEscape(byte(v)) || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// splitKey returns the unescaped ':'-separated parts of a key's suffix.
func splitKey(t *testing.T, suffix string) []string {
	t.Helper()
	var parts []string
	for _, e := range strings.Split(suffix, ":") {
		p, ok := unescape(e)
		if !ok {
			t.Fatalf("key part %q is not an escaped string (suffix %q)", e, suffix)
		}
		parts = append(parts, p)
	}
	return parts
}

// FuzzKeyspace checks the key builder on any prefix and identifiers: a
// prefix is accepted only when SCAN MATCH on it is exact and it cannot
// move a hash tag; every key starts with its prefix, holds no brace,
// space or control byte paybench did not put there, and decodes back into
// the identifiers it was built from, so that no two distinct inputs give
// the same key; a tagged key's hash tag is exactly its escaped id.
func FuzzKeyspace(f *testing.F) {
	f.Add("pb:test:", "stock", "sku-1", "a", "b")
	f.Add("pb:", "", "", "", "")
	f.Add("pb:", "%", "%25", "%7B", ":")
	f.Add("pb:x:", "{", "}", "a:b", "a%3Ab")
	f.Add("pb:日本:", "日本語", "a}b{c", "\x00", "\xff")
	f.Add("p*", "f", "i", "a", "b")
	f.Add("p{x}", "f", "i", "a", "b")
	f.Add("p q", "f", "i", "a", "b")
	f.Add("", "f", "i", "a", "b")
	f.Add("\x7f", "f", "i", "a", "b")
	f.Fuzz(func(t *testing.T, prefix, family, id, a, b string) {
		ks, err := NewKeyspace(prefix)
		if err != nil {
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("NewKeyspace(%q) error %q is not one line", prefix, msg)
			}
			return
		}
		if prefix == "" || len(prefix) > 128 || strings.ContainsAny(prefix, "{}*?[]\\") || strings.ContainsFunc(prefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			t.Fatalf("NewKeyspace accepted %q", prefix)
		}
		if ks.Prefix() != prefix || ks.Pattern() != prefix+"*" {
			t.Fatalf("prefix %q, pattern %q", ks.Prefix(), ks.Pattern())
		}
		for _, s := range []string{family, id, a, b} {
			if got, ok := unescape(Escape(s)); !ok || got != s {
				t.Fatalf("Escape(%q) = %q unescapes to %q, %v", s, Escape(s), got, ok)
			}
		}

		// Plain keys: the parts come back, in order, whatever they hold.
		for _, parts := range [][]string{{a}, {a, b}, {b, a}, {a + ":" + b}, {family, id, a, b}} {
			key := ks.Key(parts...)
			suffix, ok := strings.CutPrefix(key, prefix)
			if !ok {
				t.Fatalf("Key(%q) = %q escapes the prefix %q", parts, key, prefix)
			}
			if strings.ContainsAny(suffix, "{}") || strings.ContainsFunc(suffix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				t.Fatalf("Key(%q) = %q holds a brace, space or control byte", parts, key)
			}
			if got := splitKey(t, suffix); strings.Join(got, "\x00") != strings.Join(parts, "\x00") || len(got) != len(parts) {
				t.Fatalf("Key(%q) = %q decodes to %q", parts, key, got)
			}
			if hashTag(key) != key {
				t.Fatalf("Key(%q) = %q has a hash tag", parts, key)
			}
		}
		if a != b && ks.Key(a) == ks.Key(b) {
			t.Fatalf("Key(%q) == Key(%q)", a, b)
		}

		// Tagged keys: one brace pair, around the escaped id.
		key := ks.Tagged(family, id, a, b)
		suffix, ok := strings.CutPrefix(key, prefix)
		if !ok {
			t.Fatalf("Tagged = %q escapes the prefix %q", key, prefix)
		}
		if strings.Count(suffix, "{") != 1 || strings.Count(suffix, "}") != 1 {
			t.Fatalf("Tagged(%q, %q, %q, %q) = %q: want exactly one brace pair", family, id, a, b, key)
		}
		if tag := hashTag(key); tag != Escape(id) {
			t.Fatalf("Tagged(%q, %q) = %q hashes on %q, want %q", family, id, key, tag, Escape(id))
		}
		fam, rest, _ := strings.Cut(suffix, ":{")
		tag, tail, _ := strings.Cut(rest, "}")
		if got, ok := unescape(fam); !ok || got != family {
			t.Fatalf("Tagged = %q: family decodes to %q, want %q", key, got, family)
		}
		if got, ok := unescape(tag); !ok || got != id {
			t.Fatalf("Tagged = %q: id decodes to %q, want %q", key, got, id)
		}
		if tail == "" || tail[0] != ':' {
			t.Fatalf("Tagged = %q: parts do not follow the tag", key)
		}
		if got := splitKey(t, tail[1:]); len(got) != 2 || got[0] != a || got[1] != b {
			t.Fatalf("Tagged = %q: parts decode to %q, want %q", key, got, []string{a, b})
		}
		// Another id has another tag, and no plain key is a tagged one.
		if other := id + "x"; hashTag(ks.Tagged(family, other)) == hashTag(ks.Tagged(family, id)) {
			t.Fatalf("ids %q and %q share a hash tag", id, other)
		}
		if ks.Key(family, id, a, b) == key {
			t.Fatalf("Key and Tagged give the same key %q", key)
		}
	})
}
