package redisenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

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
//
// On a cluster it scans every master, and deletes each key with a UNLINK
// of its own (a UNLINK of several keys in different slots is refused).
func DeletePrefix(ctx context.Context, rdb redis.UniversalClient, ks impl.Keyspace) (int64, error) {
	if ks.Prefix() == "" {
		return 0, errors.New("delete prefix: empty key prefix (a zero Keyspace) would match every key")
	}
	_, cluster := rdb.(*redis.ClusterClient)
	var total atomic.Int64
	err := ForEachMaster(ctx, rdb, func(ctx context.Context, node *redis.Client) error {
		n, err := deleteOnNode(ctx, node, ks, cluster)
		total.Add(n)
		return err
	})
	if err != nil {
		return total.Load(), fmt.Errorf("delete prefix %q: %w", ks.Prefix(), err)
	}
	return total.Load(), nil
}

// deleteOnNode deletes ks's keys on one server; perKey sends one UNLINK
// per key (in one pipeline per page).
func deleteOnNode(ctx context.Context, rdb *redis.Client, ks impl.Keyspace, perKey bool) (int64, error) {
	var (
		total  int64
		cursor uint64
		useDel bool
	)
	for {
		keys, next, err := rdb.Scan(ctx, cursor, ks.Pattern(), deleteBatch).Result()
		if err != nil {
			return total, fmt.Errorf("scan: %w", err)
		}
		if len(keys) > 0 {
			var n int64
			if perKey {
				n, err = unlinkEach(ctx, rdb, keys)
			} else {
				n, err = unlink(ctx, rdb, keys, &useDel)
			}
			total += n
			if err != nil {
				return total, err
			}
		}
		if next == 0 {
			return total, nil
		}
		cursor = next
	}
}

// unlinkEach removes keys with one UNLINK each, pipelined.
func unlinkEach(ctx context.Context, rdb *redis.Client, keys []string) (int64, error) {
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(ctx, k)
		}
		return nil
	})
	var n int64
	for _, c := range cmds {
		if ic, ok := c.(*redis.IntCmd); ok {
			n += ic.Val()
		}
	}
	return n, err
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
