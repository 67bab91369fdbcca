package goredis_test

import (
	"context"
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/goredis"
	"github.com/paybench/paybench/impl/impltest"
)

// openForOrders is the goredis backend as an impl.Opener.
func openForOrders(ctx context.Context, cfg impl.ConnConfig) (impl.Backend, error) {
	c, err := goredis.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func TestOrders(t *testing.T) { impltest.RunOrders(t, impltest.Redis(t), openForOrders) }

func TestOrdersEmbedded(t *testing.T) { impltest.RunOrders(t, impltest.Embedded(t), openForOrders) }
