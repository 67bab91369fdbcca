package rueidis_test

import (
	"testing"

	"github.com/paybench/paybench/impl/impltest"
)

func TestLock(t *testing.T) { impltest.RunLock(t, impltest.Redis(t), open) }

func TestLockLibraries(t *testing.T) { impltest.RunLockLibraries(t, impltest.Redis(t), open) }
