package scripts_test

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/impl/scripts"
)

func TestLimitScriptsEmbedded(t *testing.T) {
	for name, src := range map[string]string{
		"LimitFixedWindow":   scripts.LimitFixedWindow,
		"LimitSlidingLog":    scripts.LimitSlidingLog,
		"LimitSlidingWindow": scripts.LimitSlidingWindow,
		"LimitGCRA":          scripts.LimitGCRA,
	} {
		// Every limiter reads the server's clock unless a test fixed it.
		if !strings.Contains(src, "KEYS[1]") || !strings.Contains(src, "redis.call('TIME')") || !strings.Contains(src, "ARGV[5]") {
			t.Errorf("%s does not look like a limiter script:\n%s", name, src)
		}
	}
}
