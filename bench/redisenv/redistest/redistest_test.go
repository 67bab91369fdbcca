package redistest_test

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestServerIsShared(t *testing.T) {
	a := redistest.Server(t)
	b := redistest.Server(t)
	if a != b {
		t.Fatal("Server returned two servers")
	}
	if err := a.Admin().Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("server: %s", a)
}

func TestServerConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := redistest.Server(t).Admin().Ping(t.Context()).Err(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestKeyspaceUniqueAndCleaned(t *testing.T) {
	rdb := redistest.Server(t).Admin()
	var keys []impl.Keyspace
	for _, name := range []string{"a", "a", "with space/and*glob[chars]?{}", strings.Repeat("long", 40)} {
		t.Run(name, func(t *testing.T) {
			ks := redistest.Keyspace(t)
			if !strings.HasPrefix(ks.Prefix(), "pb:test:") {
				t.Errorf("prefix %q", ks.Prefix())
			}
			if err := rdb.Set(t.Context(), ks.Key("k"), "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, ks)
		})
	}
	seen := map[string]bool{}
	for _, ks := range keys {
		if seen[ks.Prefix()] {
			t.Errorf("prefix %q given twice", ks.Prefix())
		}
		seen[ks.Prefix()] = true
		// The subtest ended: its cleanup deleted its keys.
		n, err := rdb.Exists(t.Context(), ks.Key("k")).Result()
		if err != nil || n != 0 {
			t.Errorf("key %q survived its test: exists=%d, %v", ks.Key("k"), n, err)
		}
	}
}
