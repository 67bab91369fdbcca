package goredis_test

import (
	"testing"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/impltest"
)

func TestCache(t *testing.T) {
	impltest.RunCache(t, impltest.Redis(t).Lacking(impl.CacheClientSide), open)
}

func TestCacheEmbedded(t *testing.T) {
	impltest.RunCache(t, impltest.Embedded(t).Lacking(impl.CacheClientSide), open)
}
