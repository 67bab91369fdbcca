package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
)

// savedResult runs oversell's naive and lua strategies on both backends
// and returns the path of the JSON result.
func savedResult(t *testing.T) string {
	t.Helper()
	url := serverURL(t)
	out := filepath.Join(t.TempDir(), "base.json")
	code, stdout, stderr := runCLI(t, context.Background(), "run", "oversell", "--strategy", "naive,lua", "--redis-url", url, "--json", out)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	return out
}

// editResult writes a copy of the result at path changed by edit.
func editResult(t *testing.T, path string, edit func(*result.Document)) string {
	t.Helper()
	doc := readDoc(t, path)
	edit(doc)
	out := filepath.Join(t.TempDir(), "edited.json")
	if err := reports.WriteJSONFile(out, doc); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReportRendersEveryFormat(t *testing.T) {
	path := savedResult(t)
	for _, format := range reports.Formats {
		code, stdout, stderr := runCLI(t, context.Background(), "report", path, "--format", format)
		if code != exitOK || len(stdout) == 0 {
			t.Errorf("%s: exit %d, %d bytes\n%s", format, code, len(stdout), stderr)
		}
	}
	out := filepath.Join(t.TempDir(), "lua.hgrm")
	code, _, stderr := runCLI(t, context.Background(), "report", path, "-f", "hgrm", "--cell", "oversell/rueidis/lua", "--histogram", "corrected", "-o", out)
	if b, err := os.ReadFile(out); code != exitOK || err != nil || !strings.Contains(string(b), "# oversell/rueidis/lua corrected") {
		t.Errorf("hgrm of one cell: exit %d, %v\n%s", code, err, stderr)
	}
	code, stdout, _ := runCLI(t, context.Background(), "report", path, "--gate", "p99<1us")
	if code != exitFail || !strings.Contains(stdout, "oversell") {
		t.Errorf("report with a failing gate: exit %d", code)
	}
}

func TestReportUsageErrorsExit2(t *testing.T) {
	path := filepath.Join("..", "..", "reports", "testdata", "result.json")
	notJSON := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(notJSON, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no file", []string{"report"}},
		{"two files", []string{"report", path, path}},
		{"missing file", []string{"report", "/nonexistent/r.json"}},
		{"not a result", []string{"report", notJSON}},
		{"unknown format", []string{"report", path, "--format", "pdf"}},
		{"cell without hgrm", []string{"report", path, "--cell", "oversell"}},
		{"bad gate", []string{"report", path, "--gate", "p99<"}},
		{"compare one file", []string{"compare", path}},
		{"compare bad threshold", []string{"compare", path, path, "--max-p99-increase", "lots"}},
		{"compare negative threshold", []string{"compare", path, path, "--max-throughput-drop", "-5%"}},
		{"compare bad format", []string{"compare", path, path, "--format", "pdf"}},
		{"compare missing file", []string{"compare", path, "/nonexistent/r.json"}},
		{"merge nothing", []string{"merge"}},
		{"merge missing file", []string{"merge", path, "/nonexistent/r.json"}},
		{"merge not a result", []string{"merge", path, notJSON}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, context.Background(), tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, stderr)
			}
			assertOneLine(t, stderr)
		})
	}
}

func TestCompareExitCodes(t *testing.T) {
	base := savedResult(t)
	if code, stdout, stderr := runCLI(t, context.Background(), "compare", base, base); code != exitOK || !strings.Contains(stdout, "compare: ok") {
		t.Fatalf("compare with itself: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// A baseline with much better figures.
	better := editResult(t, base, func(d *result.Document) {
		for i := range d.Cells {
			d.Cells[i].ThroughputOps *= 4
			d.Cells[i].Latency.Corrected.P99 /= 4
		}
	})
	code, stdout, stderr := runCLI(t, context.Background(), "compare", better, base)
	if code != exitFail {
		t.Fatalf("against a better baseline: exit %d\n%s", code, stdout)
	}
	for _, want := range []string{"FAIL oversell/goredis/lua: p99", "FAIL oversell/rueidis/naive: throughput"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	assertOneLine(t, stderr)
	if !strings.Contains(stderr, "oversell/") {
		t.Errorf("stderr does not name a cell: %q", stderr)
	}
	// Thresholds off: only correctness counts.
	if code, stdout, _ := runCLI(t, context.Background(), "compare", better, base, "--max-p99-increase", "none", "--max-throughput-drop", "none"); code != exitOK {
		t.Errorf("thresholds off: exit %d\n%s", code, stdout)
	}
	// A broken invariant in a strategy expected to hold.
	broken := editResult(t, base, func(d *result.Document) {
		for i := range d.Cells {
			if d.Cells[i].Key() == "oversell/rueidis/lua" {
				d.Cells[i].Invariants[0].Holds = false
				d.Cells[i].Judge()
			}
		}
	})
	code, stdout, stderr = runCLI(t, context.Background(), "compare", base, broken, "--max-p99-increase", "none", "--max-throughput-drop", "none")
	if code != exitFail || !strings.Contains(stdout, "FAIL oversell/rueidis/lua: verdict PASS → FAIL") || !strings.Contains(stderr, "oversell/rueidis/lua") {
		t.Errorf("broken invariant: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// A cell missing from NEW.
	missing := editResult(t, base, func(d *result.Document) { d.Cells = d.Cells[:len(d.Cells)-1] })
	if code, stdout, _ := runCLI(t, context.Background(), "compare", base, missing, "--max-p99-increase", "none", "--max-throughput-drop", "none"); code != exitFail ||
		!strings.Contains(stdout, "missing from the new result") {
		t.Errorf("missing cell: exit %d\n%s", code, stdout)
	}
	// An absolute gate on NEW, and the Markdown output.
	md := filepath.Join(t.TempDir(), "cmp.md")
	code, stdout, _ = runCLI(t, context.Background(), "compare", base, base, "--gate", "throughput>1e12", "--markdown", md)
	if b, err := os.ReadFile(md); code != exitFail || err != nil || !strings.Contains(string(b), "### paybench compare") {
		t.Errorf("gate: exit %d, markdown %v\n%s", code, err, stdout)
	}
}

func TestMergeAddsResults(t *testing.T) {
	path := savedResult(t)
	code, stdout, stderr := runCLI(t, context.Background(), "merge", path, path)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var merged result.Document
	if err := json.Unmarshal([]byte(stdout), &merged); err != nil {
		t.Fatalf("merge output is not a result: %v", err)
	}
	orig := readDoc(t, path)
	if len(merged.Cells) != len(orig.Cells) || len(merged.Sources) != 2 {
		t.Fatalf("%d cells, %d sources", len(merged.Cells), len(merged.Sources))
	}
	for i, c := range merged.Cells {
		o := orig.Cells[i]
		h, err := reports.CellHistogram(&c, result.HistogramCorrected)
		if err != nil || h == nil {
			t.Fatalf("%s: no merged histogram (%v)", c.Key(), err)
		}
		if h.TotalCount() != 2*o.Latency.Corrected.Count || c.Ops != 2*o.Ops || c.Generators != 2 {
			t.Errorf("%s: histogram count %d, ops %d, want twice %d", c.Key(), h.TotalCount(), c.Ops, o.Ops)
		}
		if c.Verdict != o.Verdict {
			t.Errorf("%s: merged verdict %s, input %s", c.Key(), c.Verdict, o.Verdict)
		}
	}
	out := filepath.Join(t.TempDir(), "all.json")
	if code, _, stderr := runCLI(t, context.Background(), "merge", path, path, "-o", out); code != exitOK {
		t.Errorf("merge -o: exit %d %s", code, stderr)
	} else if readDoc(t, out).Cells[0].Generators != 2 {
		t.Error("merge -o wrote no merged result")
	}
}
