package rueidis_test

import (
	"testing"

	"github.com/paybench/paybench/impl/impltest"
)

func TestLimit(t *testing.T) { impltest.RunLimit(t, impltest.Redis(t), open) }

func TestLimitEmbedded(t *testing.T) { impltest.RunLimit(t, impltest.Embedded(t), open) }

func TestLimitLibraries(t *testing.T) { impltest.RunLimitLibraries(t, impltest.Redis(t), open) }
