package redisenv

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

func TestDeletePrefix(t *testing.T) {
	for _, kind := range []Kind{KindEmbedded, KindSpawn} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == KindSpawn {
				needRedisServer(t)
			}
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := Provide(ctx, Options{Force: kind, Getenv: noenv, Warn: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rdb := s.Admin()

			ks := impl.MustKeyspace("pb:abc:")
			const n = 2500 // several SCAN pages and UNLINK batches
			pipe := rdb.Pipeline()
			for i := range n {
				switch i % 3 {
				case 0:
					pipe.Set(ctx, ks.Key("k", fmt.Sprint(i)), i, 0)
				case 1:
					pipe.HSet(ctx, ks.Tagged("order", fmt.Sprint(i), "h"), "f", i)
				default:
					pipe.SAdd(ctx, ks.Key("{weird} *?[x]", fmt.Sprint(i)), i)
				}
			}
			survivors := []string{"pb:abc", "pb:abcd:k", "pb:other:k", "pb:ab:c", "xpb:abc:k", "PB:ABC:k"}
			for _, k := range survivors {
				pipe.Set(ctx, k, "keep", 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}

			got, err := DeletePrefix(ctx, rdb, ks)
			if err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Errorf("DeletePrefix deleted %d keys, want %d", got, n)
			}
			left, err := rdb.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(left)
			want := slices.Sorted(slices.Values(survivors))
			if !slices.Equal(left, want) {
				t.Errorf("keys left = %q, want %q", left, want)
			}

			// Nothing left under the prefix: a second run deletes nothing.
			if got, err := DeletePrefix(ctx, rdb, ks); err != nil || got != 0 {
				t.Errorf("second DeletePrefix = %d, %v", got, err)
			}
			// A zero Keyspace would match every key: refused.
			if _, err := DeletePrefix(ctx, rdb, impl.Keyspace{}); err == nil {
				t.Error("DeletePrefix accepted a zero Keyspace")
			}
			if size, _ := rdb.DBSize(ctx).Result(); size != int64(len(survivors)) {
				t.Errorf("DBSIZE = %d, want %d", size, len(survivors))
			}
		})
	}
}

func TestDeletePrefixGlobPrefixRejected(t *testing.T) {
	for _, p := range []string{"pb:*:", "pb:?:", "pb:[a]:", `pb:\:`, "pb:{x}:", ""} {
		if _, err := impl.NewKeyspace(p); err == nil {
			t.Errorf("impl.NewKeyspace(%q) accepted a prefix SCAN MATCH would not match exactly", p)
		}
	}
}
