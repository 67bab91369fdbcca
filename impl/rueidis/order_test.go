package rueidis_test

import (
	"context"
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/impltest"
	"github.com/paybench/paybench/impl/rueidis"
)

// openForOrders is the rueidis backend as an impl.Opener.
func openForOrders(ctx context.Context, cfg impl.ConnConfig) (impl.Backend, error) {
	c, err := rueidis.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func TestOrders(t *testing.T) { impltest.RunOrders(t, impltest.Redis(t), openForOrders) }

func TestOrdersEmbedded(t *testing.T) { impltest.RunOrders(t, impltest.Embedded(t), openForOrders) }
