package scenarios

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/paybench/paybench/bench/redisenv/redistest"
)

// TestMain runs the tests against the shared test server (redistest.Main
// stops it at the end), then fails the package when a goroutine outlives
// them: every backend a scenario opened must be closed, every worker and
// background task ended.
func TestMain(m *testing.M) {
	code := redistest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
