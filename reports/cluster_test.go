package reports

import (
	"bytes"
	"strings"
	"testing"

	"github.com/paybench/paybench/reports/result"
)

func TestClusterNotes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cell result.Cell
		want string // "" for no line
	}{
		{"one server", result.Cell{}, ""},
		{"commands only", result.Cell{ClusterCommands: map[string]int64{"127.0.0.1:7001": 20000, "127.0.0.1:7000": 5}},
			"cluster: commands per master 127.0.0.1:7000 5 · 127.0.0.1:7001 20.0k (total 20.0k)"},
		{"commands and stock keys", result.Cell{ClusterCommands: map[string]int64{"a:1": 3}, ClusterStockKeys: map[string]int64{"b:2": 5, "a:1": 3}},
			"cluster: commands per master a:1 3 (total 3); stock keys per master a:1 3 · b:2 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClusterNotes(tc.cell)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("ClusterNotes = %q, want none", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("ClusterNotes = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestClusterNotesRendered: the text table and the HTML report both show
// a load cell's commands per master.
func TestClusterNotesRendered(t *testing.T) {
	doc := &result.Document{Kind: "load", Cells: []result.Cell{{Operation: "stock.deduct", Backend: "goredis", Strategy: "lua",
		Verdict: result.Measured, Summary: "s", ClusterCommands: map[string]int64{"127.0.0.1:7000": 131000, "127.0.0.1:7001": 138000}}}}
	want := "commands per master 127.0.0.1:7000 131.0k · 127.0.0.1:7001 138.0k"
	var text, html bytes.Buffer
	if err := Text(&text, doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, text.String())
	}
	if err := HTML(&html, doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), want) {
		t.Errorf("HTML report lacks %q", want)
	}
}
