package impl

import (
	"strings"
	"testing"
)

// hashTag returns the part of key Redis Cluster hashes: the content of the
// first {...} when it is non-empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sku-1", "sku-1"},
		{"", "%"},
		{"{", "%7B"},
		{"}", "%7D"},
		{"a:b", "a%3Ab"},
		{"50%", "50%25"},
		{"a b\n", "a%20b%0A"},
		{"日本", "日本"},
		{"%", "%25"},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEscapeIsInjective(t *testing.T) {
	ids := []string{"", "%", "%25", "{", "%7B", ":", "a:b", "a%3Ab", "a", "A"}
	seen := map[string]string{}
	for _, id := range ids {
		e := Escape(id)
		if prev, dup := seen[e]; dup {
			t.Fatalf("%q and %q both escape to %q", prev, id, e)
		}
		seen[e] = id
	}
}

func TestTaggedKeysShareASlotPerID(t *testing.T) {
	k := MustKeyspace("pb:test:")
	odd := []string{"", "{", "}", "{}", ":", "a:b", "日本語", strings.Repeat("x", 4096), "a}b{c", "%7B"}
	for _, id := range odd {
		a := k.Tagged("stock", id)
		b := k.Tagged("stock", id, "shard", "3")
		c := k.Tagged("order", id, "ledger")
		if !strings.HasPrefix(a, "pb:test:") {
			t.Errorf("%q lost its prefix", a)
		}
		if hashTag(a) != hashTag(b) || hashTag(a) != hashTag(c) {
			t.Errorf("id %q: keys %q %q %q hash differently", id, a, b, c)
		}
		if hashTag(a) != Escape(id) {
			t.Errorf("id %q: hash tag %q, want %q", id, hashTag(a), Escape(id))
		}
	}
	if hashTag(k.Tagged("stock", "a")) == hashTag(k.Tagged("stock", "b")) {
		t.Error("different ids share a hash tag")
	}
}

func TestNewKeyspace(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"pb:abc:", true},
		{"pb:日本:", true},
		{"", false},
		{"pb:{x}:", false},
		{"pb:*:", false},
		{"pb:?", false},
		{"pb:[a]", false},
		{`pb:\`, false},
		{"pb :", false},
		{"pb:\x00", false},
		{strings.Repeat("p", 129), false},
	} {
		_, err := NewKeyspace(tc.prefix)
		if (err == nil) != tc.ok {
			t.Errorf("NewKeyspace(%q) error = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}

func TestKeyAndPattern(t *testing.T) {
	k := MustKeyspace("pb:r1:")
	if got := k.Key("oversell", "goredis", "a:b"); got != "pb:r1:oversell:goredis:a%3Ab" {
		t.Errorf("Key = %q", got)
	}
	if got := k.Pattern(); got != "pb:r1:*" {
		t.Errorf("Pattern = %q", got)
	}
}

func TestValidateQuantity(t *testing.T) {
	for _, tc := range []struct {
		q  int64
		ok bool
	}{{1, true}, {MaxQuantity, true}, {0, false}, {-1, false}, {MaxQuantity + 1, false}} {
		err := ValidateQuantity(tc.q)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateQuantity(%d) = %v", tc.q, err)
		}
	}
}
