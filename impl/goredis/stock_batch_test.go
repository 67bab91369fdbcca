package goredis_test

import (
	"testing"

	"github.com/paybench/paybench/impl/impltest"
)

func TestStockBatch(t *testing.T) { impltest.RunStockBatch(t, impltest.Redis(t), open) }
