package faults

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/bench/redisenv"
)

// TestForcedFailoverNeedsASpawnedCluster: a forced failover stops a
// master's process, which only a cluster paybench spawned has.
func TestForcedFailoverNeedsASpawnedCluster(t *testing.T) {
	force, err := Parse("failover:force@1s")
	if err != nil {
		t.Fatal(err)
	}
	agreed, err := Parse("failover@1s")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check([]Spec{force}, redisenv.KindURL, true); err == nil || !strings.Contains(err.Error(), "--redis cluster") {
		t.Errorf("a forced failover of a URL cluster: %v, want a refusal naming --redis cluster", err)
	}
	for _, kind := range []redisenv.Kind{redisenv.KindCluster, redisenv.KindURL} {
		if err := Check([]Spec{agreed}, kind, true); err != nil {
			t.Errorf("an agreed failover on a %s cluster: %v", kind, err)
		}
	}
	if err := Check([]Spec{force}, redisenv.KindCluster, true); err != nil {
		t.Errorf("a forced failover of a spawned cluster: %v", err)
	}
}
