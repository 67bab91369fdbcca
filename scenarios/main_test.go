package scenarios

import (
	"os"
	"testing"

	"github.com/paybench/paybench/bench/redisenv/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
