package redisenv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// deleteBatch is the SCAN COUNT hint and the most keys one UNLINK names.
const deleteBatch = 1000

// DeletePrefix deletes every key under ks's prefix: SCAN MATCH ks.Pattern()
// COUNT 1000, each page's keys removed with one UNLINK (DEL on servers
// older than 4.0). It returns how many keys it deleted. It never flushes a
// database, and refuses a zero Keyspace (whose pattern would match every
// key). Keys written under the prefix while it runs may survive.
func DeletePrefix(ctx context.Context, rdb *redis.Client, ks impl.Keyspace) (int64, error) {
	if ks.Prefix() == "" {
		return 0, errors.New("delete prefix: empty key prefix (a zero Keyspace) would match every key")
	}
	var (
		total  int64
		cursor uint64
		useDel bool
	)
	for {
		keys, next, err := rdb.Scan(ctx, cursor, ks.Pattern(), deleteBatch).Result()
		if err != nil {
			return total, fmt.Errorf("delete prefix %q: scan: %w", ks.Prefix(), err)
		}
		if len(keys) > 0 {
			n, err := unlink(ctx, rdb, keys, &useDel)
			total += n
			if err != nil {
				return total, fmt.Errorf("delete prefix %q: %w", ks.Prefix(), err)
			}
		}
		if next == 0 {
			return total, nil
		}
		cursor = next
	}
}

// unlink removes keys with UNLINK, switching to DEL for good when the server
// does not know UNLINK.
func unlink(ctx context.Context, rdb *redis.Client, keys []string, useDel *bool) (int64, error) {
	if !*useDel {
		n, err := rdb.Unlink(ctx, keys...).Result()
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			return n, err
		}
		*useDel = true
	}
	return rdb.Del(ctx, keys...).Result()
}
