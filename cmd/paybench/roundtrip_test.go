package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
)

// TestDocumentsRoundTrip: what run, load and suite print is exactly what
// their JSON document renders to once read back, so the document holds
// everything the commands show, in every kind.
func TestDocumentsRoundTrip(t *testing.T) {
	url := serverURL(t)
	for _, tc := range []struct {
		kind   string
		args   []string
		render func(io.Writer, *result.Document) error
		cells  int
	}{
		{"run", []string{"run", "oversell", "--strategy", "naive,lua", "--buyers", "300"}, reports.Text, 4},
		{"load", []string{"load", "stock.deduct", "--requests", "300", "--strategy", "lua,decr"}, reports.Text, 4},
		{"suite", []string{"suite", "--quick", "--quiet", "--scenario", "oversell", "--operation", "stock.deduct", "--strategy", "lua"}, reports.WriteMatrix, 4},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			code, stdout, stderr := runCLI(t, context.Background(), append(tc.args, "--redis-url", url, "-c", "8", "--json", out)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			doc, err := reports.ReadJSONFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if doc.Kind != tc.kind || len(doc.Cells) != tc.cells {
				t.Fatalf("kind %q with %d cells, want %q with %d", doc.Kind, len(doc.Cells), tc.kind, tc.cells)
			}
			var again bytes.Buffer
			if err := tc.render(&again, doc); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(stdout, again.String()) {
				t.Errorf("the document renders otherwise than the command printed:\n--- printed\n%s\n--- from JSON\n%s", stdout, again.String())
			}
			for _, c := range doc.Cells {
				if c.Histograms[result.HistogramCorrected] == "" || c.Latency.Corrected.Count == 0 || len(c.Params) == 0 {
					t.Errorf("%s: histograms %d, latency count %d, params %v", c.Key(), len(c.Histograms), c.Latency.Corrected.Count, c.Params)
				}
			}
		})
	}
}
