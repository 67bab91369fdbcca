package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// TestEveryFaultOnEveryScenario runs one correct strategy of every
// scenario, on both backends, under each kind of fault, and checks that
// every cell ends honestly: the run never hangs, writes every cell, cleans
// its keys; no cell PASSes over operations that failed unsettled, and no
// strategy expected to hold FAILs because of the fault alone.
func TestEveryFaultOnEveryScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario under every fault")
	}
	// One server for every kind, with persistence so that a restart keeps
	// the cells' keys and the cell can be judged.
	srv := redistest.Spawn(t, "--appendonly", "yes", "--appendfsync", "always")
	var cells []ScenarioCells
	for _, name := range scenarios.Names() {
		sc, err := scenarios.New(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, st := range sc.Strategies() {
			if st.Expect == result.Hold {
				cells = append(cells, ScenarioCells{Scenario: sc, Strategies: []string{st.Name}})
				break
			}
		}
	}
	for _, spec := range []string{
		"pause:400ms@30ms",
		"kill-conns@30ms/250ms",
		"restart@40ms",
		"oom@30ms+300ms",
		"latency:15ms@20ms+400ms",
		"reset@30ms/250ms",
	} {
		t.Run(strings.SplitN(spec, "@", 2)[0], func(t *testing.T) {
			specs, err := faults.ParseAll([]string{spec})
			if err != nil {
				t.Fatal(err)
			}
			p := &Plan{
				Kind: "suite", Server: srv, Backends: impl.Backends(),
				Settings:  Settings{Concurrency: 8, Seed: 1, Duration: 1500 * time.Millisecond},
				Keys:      impl.MustKeyspace("pb:matrix-" + strings.NewReplacer(":", "-", "@", "-", "/", "-", "+", "-").Replace(spec) + ":"),
				Scenarios: cells,
				Faults:    specs,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			doc, err := Run(ctx, p)
			if ctx.Err() != nil {
				t.Fatalf("the run did not end in 5 minutes under %s", spec)
			}
			if doc == nil {
				t.Fatalf("no document: %v", err)
			}
			if want := len(cells) * len(p.Backends); len(doc.Cells) != want {
				t.Fatalf("%d cells, want %d (%v)", len(doc.Cells), want, err)
			}
			for _, c := range doc.Cells {
				fails := countFailures(&c, false)
				unsettled := fails.unknown - min(c.Settled, fails.unknown)
				switch {
				case c.Verdict == result.Fail:
					t.Errorf("%s FAIL under %s: %s", c.Key(), spec, c.Summary)
				case c.Verdict == result.Error:
					t.Errorf("%s ERROR under %s: %s", c.Key(), spec, c.Error)
				case c.Verdict == result.Pass && unsettled > 0:
					t.Errorf("%s PASS with %d unsettled failures under %s", c.Key(), unsettled, spec)
				case len(c.Faults) != 1:
					t.Errorf("%s: fault log %+v", c.Key(), c.Faults)
				}
				t.Logf("%s %s: %s %s", c.Key(), c.Verdict, c.Summary, c.Reason)
			}
			if left := keysUnder(t, p, p.Keys.Pattern()); len(left) != 0 {
				t.Errorf("%d keys left under %s", len(left), p.Keys.Prefix())
			}
		})
	}
}
