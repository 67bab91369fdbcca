package reports

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paybench/paybench/reports/result"
)

func TestHistoryNotesAndPages(t *testing.T) {
	bad := &result.History{Model: "stock counter", Result: result.HistoryNotLinearizable, Ops: 1043, Partitions: 1, CheckSec: 0.04,
		Partition: "item sku-1", Witness: "buyers 17 and 42 were both told 7 remained",
		WitnessOps: []string{"buyer 17: buy 1 → OK, 7 left [1.204ms–1.913ms]"}, Page: []byte("<html>viz</html>")}
	doc := &result.Document{Cells: []result.Cell{
		{Scenario: "oversell", Backend: "goredis", Strategy: "naive", Verdict: result.Reproduced, History: bad},
		{Scenario: "oversell", Backend: "goredis", Strategy: "lua", Verdict: result.Pass,
			History: &result.History{Model: "stock counter", Result: result.HistoryLinearizable, Ops: 1000, Partitions: 1}},
	}}
	dir := t.TempDir()
	if err := WriteHistoryPages(filepath.Join(dir, "report.html"), doc); err != nil {
		t.Fatal(err)
	}
	want := "report.history-oversell-goredis-naive.html"
	if bad.Visualization != want || doc.Cells[1].History.Visualization != "" {
		t.Fatalf("visualizations %q, %q", bad.Visualization, doc.Cells[1].History.Visualization)
	}
	if b, err := os.ReadFile(filepath.Join(dir, want)); err != nil || string(b) != "<html>viz</html>" {
		t.Fatalf("page %q, %v", b, err)
	}
	var text strings.Builder
	if err := Text(&text, doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"history: not linearizable (stock counter: 1043 operations, 1 partitions",
		"✗ history, item sku-1: buyers 17 and 42 were both told 7 remained",
		"buyer 17: buy 1 → OK, 7 left",
		"visualization: " + want,
		"history: linearizable (stock counter: 1000 operations",
	} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, text.String())
		}
	}
	var page strings.Builder
	if err := HTML(&page, doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), `href="`+want+`"`) || !strings.Contains(page.String(), "both told 7 remained") {
		t.Error("the HTML report neither links the visualization nor shows the witness")
	}
}
