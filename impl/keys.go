package impl

import (
	"errors"
	"fmt"
	"strings"
)

// Keyspace builds every key of one run under its prefix. Identifiers are
// escaped so that any string (empty, very long, "{", ":", unicode) yields a
// well-formed key whose hash tag, when there is one, is the one paybench
// chose: the prefix never contains braces and escaped parts never do either.
type Keyspace struct {
	prefix string
}

// NewKeyspace validates prefix and returns its Keyspace. A prefix must be
// non-empty, at most 128 bytes, and free of braces, glob characters
// (* ? [ ] \), whitespace and control characters, so that it never moves a
// hash tag and SCAN MATCH on it matches exactly the run's keys.
func NewKeyspace(prefix string) (Keyspace, error) {
	if prefix == "" {
		return Keyspace{}, errors.New("key prefix is empty")
	}
	if len(prefix) > 128 {
		return Keyspace{}, fmt.Errorf("key prefix is longer than 128 bytes")
	}
	for _, r := range prefix {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("{}*?[]\\", r) {
			return Keyspace{}, fmt.Errorf("key prefix %q contains %q (braces, glob characters, spaces and control characters are not allowed)", prefix, r)
		}
	}
	return Keyspace{prefix: prefix}, nil
}

// MustKeyspace is NewKeyspace for prefixes known to be valid; it panics
// otherwise. Tests use it.
func MustKeyspace(prefix string) Keyspace {
	k, err := NewKeyspace(prefix)
	if err != nil {
		panic(err)
	}
	return k
}

// Prefix returns the run prefix.
func (k Keyspace) Prefix() string { return k.prefix }

// Key returns prefix + the escaped parts joined by ':'.
func (k Keyspace) Key(parts ...string) string {
	var b strings.Builder
	b.WriteString(k.prefix)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(Escape(p))
	}
	return b.String()
}

// Tagged returns prefix + family + ":{" + id + "}" + (":" + part)..., every
// piece escaped: all keys of one id share one Redis Cluster slot, and
// different ids spread over the cluster.
func (k Keyspace) Tagged(family, id string, parts ...string) string {
	var b strings.Builder
	b.WriteString(k.prefix)
	b.WriteString(Escape(family))
	b.WriteString(":{")
	b.WriteString(Escape(id))
	b.WriteByte('}')
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(Escape(p))
	}
	return b.String()
}

// Pattern returns the SCAN MATCH pattern that matches exactly the keys
// under this prefix.
func (k Keyspace) Pattern() string { return k.prefix + "*" }

// Escape makes s safe as one key part: '%', '{', '}', ':', space and
// control bytes become %XX; the empty string becomes "%" (which no other
// input produces). Other bytes, unicode included, are kept.
func Escape(s string) string {
	if s == "" {
		return "%"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '%' || c == '{' || c == '}' || c == ':'
}
