package goredis_test

import (
	"testing"

	"github.com/paybench/paybench/impl/impltest"
)

func TestCache(t *testing.T) { impltest.RunCache(t, impltest.Redis(t), open) }

func TestCacheEmbedded(t *testing.T) { impltest.RunCache(t, impltest.Embedded(t), open) }
