package rueidis_test

import (
	"context"
	"os"
	"testing"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/impltest"
	"github.com/paybench/paybench/impl/rueidis"
)

func open(ctx context.Context, cfg impl.ConnConfig) (impl.Backend, error) {
	c, err := rueidis.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestBackend(t *testing.T) { impltest.RunBackend(t, impltest.Redis(t), open) }

func TestStock(t *testing.T) { impltest.RunStock(t, impltest.Redis(t), open) }

func TestStockEmbedded(t *testing.T) { impltest.RunStock(t, impltest.Embedded(t), open) }

// do sends one raw command through the rueidis client.
func do(ctx context.Context, b impl.Backend, args ...string) error {
	rc := b.(*rueidis.Client).Rueidis()
	return rc.Do(ctx, rc.B().Arbitrary(args...).Build()).Error()
}

func TestClassify(t *testing.T) { impltest.RunClassify(t, impltest.Redis(t), open, do) }

func TestClassifyEmbedded(t *testing.T) { impltest.RunClassify(t, impltest.Embedded(t), open, do) }

func TestClientSettings(t *testing.T) { impltest.RunClientSettings(t, impltest.Redis(t), open) }

func TestTLS(t *testing.T) { impltest.RunTLS(t, open) }
