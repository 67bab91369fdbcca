package rueidis_test

import (
	"testing"

	"github.com/paybench/paybench/impl/impltest"
)

func TestScript(t *testing.T) { impltest.RunScript(t, impltest.Redis(t), open) }

func TestScriptEmbedded(t *testing.T) { impltest.RunScript(t, impltest.Embedded(t), open) }
