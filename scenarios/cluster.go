package scenarios

import (
	"context"
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
