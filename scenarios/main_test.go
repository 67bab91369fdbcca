package scenarios

import (
	"os"
	"testing"

	"github.com/paybench/paybench/bench/redisenv/redistest"
)

// TestMain runs the tests against the shared test server (redistest.Main
// stops it at the end), then fails the package when a goroutine outlives
// them: every backend a scenario opened must be closed, every worker and
// background task ended.
func TestMain(m *testing.M) {
	os.Exit(redistest.MainNoLeaks(m))
}
