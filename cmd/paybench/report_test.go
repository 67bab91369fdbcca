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
// and returns the path of the JSON result. The naive cells pause 200 µs
// between read and write (--think): this test is about rendering, and the
// pause makes naive's verdict REPRODUCED whatever else the machine runs.
func savedResult(t *testing.T) string {
	t.Helper()
	url := serverURL(t)
	out := filepath.Join(t.TempDir(), "base.json")
	code, stdout, stderr := runCLI(t, context.Background(), "run", "oversell", "--strategy", "naive,lua", "--think", "200us", "--redis-url", url, "--json", out)
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
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const head = `{"schema": 1, "kind": "run", "tool": {"version": "0.1.0"}, "started": "2026-01-02T03:04:05Z"`
	notJSON := file("x.json", "hello")
	schemaOnly := file("schema-only.json", `{"schema": 1}`)
	otherKind := file("kind.json", `{"schema": 1, "kind": "Pod", "tool": {}, "started": "2026-01-02T03:04:05Z"}`)
	newer := file("newer.json", `{"schema": 2, "kind": "run", "tool": {"version": "9.0.0"}, "started": "2026-01-02T03:04:05Z"}`)
	noCells := file("empty.json", head+`, "cells": []}`)
	noBackend := file("no-backend.json", head+`, "cells": [{"scenario": "oversell", "strategy": "lua", "verdict": "PASS"}]}`)
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no file", []string{"report"}, ""},
		{"two files", []string{"report", path, path}, ""},
		{"missing file", []string{"report", "/nonexistent/r.json"}, "no such file"},
		{"not JSON", []string{"report", notJSON}, notJSON + " is not JSON: line 1: invalid character 'h'"},
		{"not a result", []string{"report", schemaOnly}, schemaOnly + ` is not a paybench result (no "kind", "tool" or "started" field)`},
		{"another kind", []string{"report", otherKind}, `("kind" is "Pod", want run, load or suite)`},
		{"newer schema", []string{"report", newer}, newer + " was written by a newer paybench (schema 2, this build reads 1)"},
		{"cell without backend", []string{"report", noBackend}, `cells[0] (oversell/lua) has no "backend"`},
		{"unknown format", []string{"report", path, "--format", "pdf"}, ""},
		{"cell without hgrm", []string{"report", path, "--cell", "oversell"}, ""},
		{"bad gate", []string{"report", path, "--gate", "p99<"}, ""},
		{"compare one file", []string{"compare", path}, ""},
		{"compare bad threshold", []string{"compare", path, path, "--max-p99-increase", "lots"}, ""},
		{"compare negative threshold", []string{"compare", path, path, "--max-throughput-drop", "-5%"}, ""},
		{"compare bad format", []string{"compare", path, path, "--format", "pdf"}, ""},
		{"compare missing file", []string{"compare", path, "/nonexistent/r.json"}, ""},
		{"compare not JSON", []string{"compare", notJSON, path}, notJSON + " is not JSON"},
		{"compare not a result", []string{"compare", path, schemaOnly}, schemaOnly + " is not a paybench result"},
		{"compare newer schema", []string{"compare", newer, path}, "written by a newer paybench"},
		{"compare no cells", []string{"compare", path, noCells}, noCells + " has no cells"},
		{"compare base without cells", []string{"compare", noCells, path}, noCells + " has no cells"},
		{"compare cell without backend", []string{"compare", path, noBackend}, `has no "backend"`},
		{"merge nothing", []string{"merge"}, ""},
		{"merge missing file", []string{"merge", path, "/nonexistent/r.json"}, ""},
		{"merge not JSON", []string{"merge", path, notJSON}, notJSON + " is not JSON"},
		{"merge not a result", []string{"merge", path, schemaOnly}, schemaOnly + " is not a paybench result"},
		{"merge newer schema", []string{"merge", path, newer}, "written by a newer paybench"},
		{"merge no cells", []string{"merge", path, noCells}, noCells + " has no cells"},
		{"merge cell without backend", []string{"merge", noBackend, path}, `has no "backend"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, context.Background(), tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, stderr)
			}
			assertOneLine(t, stderr)
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
		})
	}
	// A valid document without cells renders: report has nothing to
	// refuse.
	if code, stdout, stderr := runCLI(t, context.Background(), "report", noCells); code != exitOK || !strings.Contains(stdout, "SCENARIO") {
		t.Errorf("report of a document without cells: exit %d\n%s\n%s", code, stdout, stderr)
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

// fixtureResult is the reports package's fixed result: no Redis needed.
var fixtureResult = filepath.Join("..", "..", "reports", "testdata", "result.json")

// TestCompareCellsThatCannotBeJudged: an INCONCLUSIVE cell of NEW is listed,
// not failed; a cell of an interrupted NEW counts as missing, never as a
// verdict change.
func TestCompareCellsThatCannotBeJudged(t *testing.T) {
	healthy := func(d *result.Document) {
		var cells []result.Cell
		for _, c := range d.Cells {
			if c.Verdict.AsExpected() {
				cells = append(cells, c)
			}
		}
		d.Cells = cells
	}
	base := editResult(t, fixtureResult, healthy)
	breakLua := func(d *result.Document) *result.Cell {
		healthy(d)
		for i := range d.Cells {
			if c := &d.Cells[i]; c.Key() == "oversell/goredis/lua" {
				c.Invariants[0].Holds = false
				c.Judge()
				return c
			}
		}
		t.Fatal("no oversell/goredis/lua cell")
		return nil
	}
	for _, tc := range []struct {
		name    string
		edit    func(*result.Document)
		code    int
		want    []string // in stdout
		notWant string
	}{
		{"inconclusive", func(d *result.Document) {
			c := breakLua(d)
			c.Verdict, c.Reason = result.Inconclusive, "the server restarted"
		}, exitOK, []string{"note oversell/goredis/lua: not judged: INCONCLUSIVE: the server restarted", "compare: ok"}, "FAIL"},
		{"interrupted document", func(d *result.Document) {
			breakLua(d)
			d.Interrupted = true
		}, exitFail, []string{"FAIL oversell/goredis/lua: not compared: interrupted", "FAIL stock.deduct/rueidis/lua: not compared: interrupted"}, "verdict PASS → FAIL"},
		{"interrupted cell", func(d *result.Document) { breakLua(d).Interrupted = true },
			exitFail, []string{"FAIL oversell/goredis/lua: not compared: interrupted", "compare: FAIL (1 failures)"}, "verdict PASS → FAIL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newPath := editResult(t, fixtureResult, tc.edit)
			code, stdout, stderr := runCLI(t, context.Background(), "compare", base, newPath)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout, tc.notWant) {
				t.Errorf("stdout has %q:\n%s", tc.notWant, stdout)
			}
			if code != exitOK {
				assertOneLine(t, stderr)
			}
		})
	}
}

// TestMergeWarnsOfDifferentParameters: the warnings go to stderr and into
// the merged document.
func TestMergeWarnsOfDifferentParameters(t *testing.T) {
	other := editResult(t, fixtureResult, func(d *result.Document) {
		d.Fairness.Server.Version = "7.2.4"
		for i := range d.Cells {
			if d.Cells[i].Operation != "" && d.Cells[i].Params != nil {
				d.Cells[i].Params["rate"] = "9000"
				d.Cells[i].Params["seed"] = "2"
			}
		}
	})
	out := filepath.Join(t.TempDir(), "all.json")
	code, _, stderr := runCLI(t, context.Background(), "merge", fixtureResult, other, "-o", out)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	wants := []string{
		"paybench: warning: " + other + " ran against redis 7.2.4, " + fixtureResult + " against redis 7.0.15",
		"paybench: warning: parameter rate differs between the inputs (5000 in " + fixtureResult + ", 9000 in " + other + ")",
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, "parameter seed") {
		t.Errorf("warned of seeds that differ:\n%s", stderr)
	}
	if doc := readDoc(t, out); len(doc.Warnings) != strings.Count(stderr, "paybench: warning: ") {
		t.Errorf("the merged document records %d warnings, stderr has:\n%s", len(doc.Warnings), stderr)
	}
}
