package goredis_test

import (
	"context"
	"os"
	"testing"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/goredis"
	"github.com/paybench/paybench/impl/impltest"
)

func open(ctx context.Context, cfg impl.ConnConfig) (impl.Backend, error) {
	c, err := goredis.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestBackend(t *testing.T) { impltest.RunBackend(t, impltest.Redis(t), open) }

func TestStock(t *testing.T) { impltest.RunStock(t, impltest.Redis(t), open) }

func TestStockEmbedded(t *testing.T) { impltest.RunStock(t, impltest.Embedded(t), open) }

// do sends one raw command through the go-redis client.
func do(ctx context.Context, b impl.Backend, args ...string) error {
	a := make([]any, len(args))
	for i, s := range args {
		a[i] = s
	}
	return b.(*goredis.Client).Redis().Do(ctx, a...).Err()
}

func TestClassify(t *testing.T) { impltest.RunClassify(t, impltest.Redis(t), open, do) }

func TestClassifyEmbedded(t *testing.T) { impltest.RunClassify(t, impltest.Embedded(t), open, do) }

func TestClientSettings(t *testing.T) { impltest.RunClientSettings(t, impltest.Redis(t), open) }

func TestTLS(t *testing.T) { impltest.RunTLS(t, open) }
