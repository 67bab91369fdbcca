package scenarios

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// sumOnlyPurchase is a sharded purchase broken on purpose: it checks only
// the sum of the shards and takes the units from the chosen shard alone,
// so a shard goes negative while the total never does.
const sumOnlyPurchase = `
local total = 0
for i = 2, #KEYS do
  total = total + tonumber(redis.call('GET', KEYS[i]) or '0')
end
local qty = tonumber(ARGV[1])
if total < qty then
  return {0, total, 0}
end
redis.call('DECRBY', KEYS[2], qty)
redis.call('HSET', KEYS[1], ARGV[2], qty)
return {1, total - qty, 0}
`

// sumOnlyShards is the backend under test whose sharded strategy
// purchases with sumOnlyPurchase (through the backend's own script
// support); everything else is the real strategy.
type sumOnlyShards struct{ impl.Backend }

// Stock implements impl.StockBackend.
func (b sumOnlyShards) Stock(strategy string, opts impl.StockOptions) (impl.Stock, error) {
	real, err := b.Backend.(impl.StockBackend).Stock(strategy, opts)
	if err != nil {
		return nil, err
	}
	return &sumOnlyStock{Stock: real, script: b.Backend.(impl.ScriptBackend).Script(sumOnlyPurchase), opts: opts.WithDefaults()}, nil
}

type sumOnlyStock struct {
	impl.Stock
	script impl.Script
	opts   impl.StockOptions
}

// Purchase implements impl.Stock, wrongly.
func (s *sumOnlyStock) Purchase(ctx context.Context, item, id string, qty int64) (impl.Deduction, error) {
	keys := append([]string{impl.PurchasesKey(s.opts.Keys, item)},
		impl.StockShardKeys(s.opts.Keys, item, rand.IntN(s.opts.Shards), s.opts.Shards)...)
	vals, err := s.script.Run(ctx, keys, strconv.FormatInt(qty, 10), id)
	if err != nil {
		return impl.Deduction{}, err
	}
	return impl.DecodeDeduction(vals)
}

// TestOversellShardNeverNegative: a sharded strategy that keeps the total
// right but lets one shard go below zero is caught by "no shard ever
// negative", which the sum-only invariants cannot see; the real strategy
// holds it.
func TestOversellShardNeverNegative(t *testing.T) {
	for _, backend := range impl.Backends() {
		for _, tc := range []struct {
			name   string
			broken bool
			want   result.Verdict
		}{
			{"real", false, result.Pass},
			{"sum only", true, result.Fail},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				env := testEnv(t, backend)
				if tc.broken {
					env.Backend = sumOnlyShards{env.Backend}
				}
				cell := runJudged(t, newOversell(), env, impl.StockSharded)
				t.Logf("%s: %s", cell.Verdict, cell.Summary)
				if cell.Verdict != tc.want {
					t.Fatalf("verdict %s, want %s: %s %+v", cell.Verdict, tc.want, cell.Summary, cell.Invariants)
				}
				for _, inv := range cell.Invariants {
					shard := inv.Name == "no shard ever negative"
					switch {
					case shard && inv.Holds == tc.broken:
						t.Errorf("%s holds=%v: %s", inv.Name, inv.Holds, inv.Detail)
					case !shard && !inv.Holds:
						t.Errorf("%s broken too: %s", inv.Name, inv.Detail)
					}
				}
				if min := cell.Figures["shard_min_observed"]; (min < 0) != tc.broken {
					t.Errorf("shard_min_observed %v", min)
				}
				if tc.broken && !strings.Contains(cell.Summary, "shard") {
					t.Errorf("summary does not name the shard: %q", cell.Summary)
				}
			})
		}
	}
}

// TestStockSamplerSeesEachShard: the sampler keeps the lowest value of
// every key, not only of their sum.
func TestStockSamplerSeesEachShard(t *testing.T) {
	env := testEnv(t, impl.GoRedis)
	ctx := t.Context()
	sr := newStockReader(env, impl.StockSharded, 3)
	for i, v := range []int64{5, -3, 4} {
		if err := env.Admin.Set(ctx, sr.keys[i], v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s := newStockSampler(6, len(sr.keys))
	// Stopped as the sale stops it: cancelled, not by a deadline (which
	// go-redis would put on the socket, failing the read in flight).
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	time.AfterFunc(50*time.Millisecond, cancel)
	s.run(sctx, sr, time.Millisecond)
	if s.n == 0 || s.failed != 0 || s.minSum != 6 || s.minKey != -3 || s.minKeyAt != 1 {
		t.Errorf("sampler: %d samples, %d failed, lowest sum %d, lowest key %d (key %d); want the sum 6, key 1 at -3",
			s.n, s.failed, s.minSum, s.minKey, s.minKeyAt)
	}
	if err := s.failure(); err != nil {
		t.Errorf("failure() = %v", err)
	}
}
