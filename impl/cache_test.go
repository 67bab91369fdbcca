package impl_test

import (
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

func TestCacheEntryEncoding(t *testing.T) {
	for _, e := range []impl.CacheEntry{
		{Found: true, Version: 1, Value: "x", Cost: 20 * time.Millisecond},
		{Found: true, Version: 1 << 40, Value: ""},
		{Found: true, Version: 0, Value: "a\x00b{c}:d 日本"},
	} {
		v, d, c := e.Encode()
		got, err := impl.ParseCacheEntry(v, d, c)
		if err != nil || got != e {
			t.Errorf("round trip of %+v = %+v, %v", e, got, err)
		}
	}
	if _, err := impl.ParseCacheEntry("x", "", ""); err == nil {
		t.Errorf("a non-numeric version parsed")
	}
	if _, err := impl.ParseCacheEntry("1", "", "y"); err == nil {
		t.Errorf("a non-numeric cost parsed")
	}
	if e, err := impl.ParseCacheEntry("3", "v", ""); err != nil || e.Cost != 0 {
		t.Errorf("missing cost: %+v, %v", e, err)
	}
	if got := strings.Join(impl.CacheFields(), ","); got != "v,d,c" {
		t.Errorf("CacheFields = %s", got)
	}
}

func TestCacheOptionsDefaults(t *testing.T) {
	o := impl.CacheOptions{TTL: 300 * time.Millisecond}.WithDefaults()
	if o.Write != impl.CacheWriteNaive || o.StaleFor != o.TTL || o.LockTTL != time.Second ||
		o.LockWait != o.LockTTL || o.PollEvery <= 0 || o.Beta != 1 || o.LocalTTL != o.TTL || o.VersionTTL != time.Minute {
		t.Fatalf("defaults: %+v", o)
	}
	if d := (impl.CacheOptions{}).WithDefaults(); d.TTL != time.Second {
		t.Fatalf("default TTL %s", d.TTL)
	}
}

func TestCacheSources(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range []impl.CacheSource{impl.FromRedis, impl.FromLocal, impl.FromStale, impl.FromShared, impl.FromOrigin} {
		if seen[s.String()] {
			t.Errorf("duplicate name %s", s)
		}
		seen[s.String()] = true
		want := s == impl.FromRedis || s == impl.FromLocal || s == impl.FromStale
		if s.Hit() != want {
			t.Errorf("%s.Hit() = %v", s, s.Hit())
		}
	}
}
