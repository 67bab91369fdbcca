package runner

import (
	"sync"
	"testing"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/scenarios"
)

// fakeCellMetrics tallies what one cell's live export hears.
type fakeCellMetrics struct {
	mu      sync.Mutex
	key     string
	ops     int64
	ends    int
	dropped int64
}

func (f *fakeCellMetrics) Interval(iv bench.Interval) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops += iv.Corrected.TotalCount()
}

func (f *fakeCellMetrics) End(dropped int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends++
	f.dropped += dropped
}

// TestMetricsHearEveryCell: with Plan.Metrics set, every cell — scenario
// and load, on every backend — gets its own live export under its labels,
// hears its engine's operations, and is ended when it is over.
func TestMetricsHearEveryCell(t *testing.T) {
	p := testPlan(t)
	p.Scenarios = []ScenarioCells{{Scenario: oversell(t), Strategies: []string{impl.StockLua}}}
	stock, err := scenarios.LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	p.Loads = []LoadCells{{Operation: stock, Strategies: []string{impl.StockLua}, Shape: LoadShape{Duration: 300 * time.Millisecond, Pacer: bench.ConstantPacer{Rate: 1000}}}}
	cells := map[string]*fakeCellMetrics{}
	p.Metrics = func(workload, backend, strategy string) CellMetrics {
		key := workload + "/" + backend + "/" + strategy
		if cells[key] != nil {
			t.Errorf("cell %s started twice", key)
		}
		cells[key] = &fakeCellMetrics{key: key}
		return cells[key]
	}
	doc, err := runPlan(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != len(doc.Cells) || len(cells) != 4 {
		t.Fatalf("%d cells exported, %d ran; want 4", len(cells), len(doc.Cells))
	}
	for _, c := range doc.Cells {
		m := cells[c.Key()]
		if m == nil {
			t.Errorf("%s: no live export", c.Key())
			continue
		}
		if m.ends == 0 || m.ops == 0 {
			t.Errorf("%s: heard %d operations, ended %d times", c.Key(), m.ops, m.ends)
		}
		if c.Operation != "" && (m.ops != c.Ops || m.dropped != c.Dropped) {
			t.Errorf("%s: heard %d operations and %d dropped; the cell has %d and %d", c.Key(), m.ops, m.dropped, c.Ops, c.Dropped)
		}
	}
}
