package goredis_test

import (
	"testing"

	"github.com/paybench/paybench/impl/impltest"
)

func TestDedupe(t *testing.T) { impltest.RunDedupe(t, impltest.Redis(t), open) }

func TestDedupeEmbedded(t *testing.T) { impltest.RunDedupe(t, impltest.Embedded(t), open) }
