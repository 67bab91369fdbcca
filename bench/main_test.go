package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// worker, merger, supervisor and timer callback of a run must have ended
// when Run returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
