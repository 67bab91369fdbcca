package scenarios

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
)

// scanKeys returns every key matching pattern: SCAN MATCH on the server,
// or on every master of a Redis Cluster (a cluster client's SCAN would
// see one node only).
func scanKeys(ctx context.Context, admin redis.UniversalClient, pattern string) ([]string, error) {
	var mu sync.Mutex
	var keys []string
	err := redisenv.ForEachMaster(ctx, admin, func(ctx context.Context, node *redis.Client) error {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	})
	return keys, err
}

// txChunk is how many records one read-back transaction (MULTI with the
// server's TIME) may cover: n on one server; 1 on a Redis Cluster, where
// a transaction must stay in one slot and each record's keys share one
// hash tag (the TIME then comes from the master that holds the record,
// in the same transaction).
func txChunk(admin redis.UniversalClient, n int) int {
	if _, ok := admin.(*redis.ClusterClient); ok {
		return 1
	}
	return n
}

// mget is MGET of keys, a nil for each missing key: one atomic read on
// one server, or on a cluster when the keys share a hash tag (an item's
// shards); otherwise, on a Redis Cluster, where one MGET must stay in one
// slot, a pipeline of GETs (the cluster client sends each master its
// share), which is not one instant.
func mget(ctx context.Context, admin redis.UniversalClient, keys ...string) ([]any, error) {
	if _, ok := admin.(*redis.ClusterClient); !ok || oneTag(keys) {
		return admin.MGet(ctx, keys...).Result()
	}
	gets := make([]*redis.StringCmd, len(keys))
	_, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			gets[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, g := range gets {
		v, err := g.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, err
		default:
			out[i] = v
		}
	}
	return out, nil
}

// oneTag reports whether every key has the same non-empty hash tag (so
// the same cluster slot).
func oneTag(keys []string) bool {
	first := ""
	for i, k := range keys {
		tag := hashTag(k)
		if tag == "" || (i > 0 && tag != first) {
			return false
		}
		first = tag
	}
	return true
}

// hashTag returns the part of key between its first '{' and the next '}'
// when not empty, as Redis Cluster hashes it; "" when the key has none.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return ""
	}
	return key[i+1 : i+1+j]
}
