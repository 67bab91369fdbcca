package reports

import (
	"bytes"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/perf/benchfmt"

	"github.com/paybench/paybench/reports/result"
)

func render(t *testing.T, doc *result.Document, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, doc, format); err != nil {
		t.Fatalf("render %s: %v", format, err)
	}
	return buf.Bytes()
}

func TestRenderersMatchGoldenFiles(t *testing.T) {
	doc := readFixture(t)
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			golden(t, format+".golden", render(t, doc, format))
		})
	}
	t.Run("hgrm one histogram", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Hgrm(&buf, doc, HgrmOptions{Cells: "stock.deduct/rueidis", Histogram: "uncorrected"}); err != nil {
			t.Fatal(err)
		}
		golden(t, "hgrm-one.golden", buf.Bytes())
	})
	t.Run("compare text", func(t *testing.T) {
		base := readFixture(t)
		newDoc := readFixture(t)
		newDoc.Cells[2].Latency.Corrected.P99 *= 2
		newDoc.Cells[3].ThroughputOps /= 2
		newDoc.Cells = newDoc.Cells[:len(newDoc.Cells)-1]
		var buf bytes.Buffer
		cmp := Compare(base, newDoc, CompareOptions{MaxP99Increase: 0.1, MaxThroughputDrop: 0.05, MaxErrorRate: -1})
		if err := cmp.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		golden(t, "compare.golden", buf.Bytes())
		buf.Reset()
		if err := cmp.WriteMarkdown(&buf); err != nil {
			t.Fatal(err)
		}
		golden(t, "compare-markdown.golden", buf.Bytes())
	})
}

func TestRenderersShowWarnings(t *testing.T) {
	doc := readFixture(t)
	doc.Warnings = []string{"b.json ran against redis 7.2.4, a.json against redis 7.0.15: merging assumes one Redis"}
	for _, format := range []string{FormatText, FormatMatrix, FormatMarkdown, FormatHTML, FormatJSON} {
		if out := string(render(t, doc, format)); !strings.Contains(out, "b.json ran against redis 7.2.4") {
			t.Errorf("%s does not show the warning", format)
		}
	}
}

// TestRenderersShowAnInterruptedCell: a cell cut short says so wherever
// its verdict is shown, and benchstat does not get its partial figures.
func TestRenderersShowAnInterruptedCell(t *testing.T) {
	doc := readFixture(t)
	c := &doc.Cells[3] // oversell/rueidis/lua
	c.Interrupted = true
	for _, tc := range []struct {
		format, want string
	}{
		{FormatText, "    interrupted: figures are partial"},
		{FormatMatrix, "PASS 40.3k/s p99 5.93ms (interrupted)"},
		{FormatMarkdown, "PASS 40.3k/s p99 5.93ms (interrupted)"},
		{FormatHTML, "interrupted: figures are partial"},
		{FormatJSON, `"interrupted": true`},
	} {
		if out := string(render(t, doc, tc.format)); !strings.Contains(out, tc.want) {
			t.Errorf("%s lacks %q", tc.format, tc.want)
		}
	}
	bench := string(render(t, doc, FormatBenchFmt))
	if strings.Contains(bench, "Oversell/backend=rueidis/strategy=lua") || strings.Contains(bench, "LockRace") {
		t.Errorf("benchfmt has an interrupted or INCONCLUSIVE cell:\n%s", bench)
	}
	if !strings.Contains(bench, "Oversell/backend=goredis/strategy=lua") {
		t.Errorf("benchfmt lacks a whole cell:\n%s", bench)
	}
	doc.Interrupted = true
	if bench := string(render(t, doc, FormatBenchFmt)); strings.Contains(bench, "Benchmark") {
		t.Errorf("benchfmt of an interrupted document has results:\n%s", bench)
	}
}

func TestRenderUnknownFormat(t *testing.T) {
	if err := Render(&bytes.Buffer{}, &result.Document{}, "pdf"); err == nil {
		t.Fatal("no error for an unknown format")
	}
}

// TestHTMLIsSelfContained checks that the page loads nothing: no URL of any
// scheme, no external stylesheet, script, image or font, and that it has
// its plots.
func TestHTMLIsSelfContained(t *testing.T) {
	doc := readFixture(t)
	page := string(render(t, doc, FormatHTML))
	for _, bad := range []string{"http://", "https://", "//cdn", "<script", "<link", "<img", "<iframe", "@import", "url("} {
		if strings.Contains(page, bad) {
			i := strings.Index(page, bad)
			t.Errorf("HTML contains %q: …%s…", bad, page[max(0, i-60):min(len(page), i+60)])
		}
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"([^"#][^"]*)"`).FindStringSubmatch(page); m != nil {
		t.Errorf("HTML references %s=%q", m[1], m[2])
	}
	// One plot per cell that measured something, one comparison per row
	// on two backends, and the overview.
	withHist := 0
	for _, c := range doc.Cells {
		if len(c.Histograms) > 0 {
			withHist++
		}
	}
	if n := strings.Count(page, "<svg"); n < withHist+1 {
		t.Errorf("%d <svg> elements, want at least %d", n, withHist+1)
	}
	for _, want := range []string{"<!DOCTYPE html>", "latency by percentile", "throughput per interval", "p99 per interval",
		"corrected (from intended start)", "uncorrected (from send)", "corrected = uncorrected (closed loop)",
		"backends compared", "REPRODUCED", "stock never observed negative", "lowest stock seen -3"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}

// junitDoc is an independent reading of the JUnit schema, so the test does
// not trust the writer's own types.
type junitDoc struct {
	XMLName xml.Name `xml:"testsuites"`
	Tests   int      `xml:"tests,attr"`
	Fails   int      `xml:"failures,attr"`
	Suites  []struct {
		Name  string `xml:"name,attr"`
		Tests int    `xml:"tests,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Class   string `xml:"classname,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestJUnitHasACasePerInvariant(t *testing.T) {
	doc := readFixture(t)
	var j junitDoc
	if err := xml.Unmarshal(render(t, doc, FormatJUnit), &j); err != nil {
		t.Fatalf("JUnit output is not valid XML: %v", err)
	}
	if len(j.Suites) != len(doc.Cells) {
		t.Fatalf("%d suites for %d cells", len(j.Suites), len(doc.Cells))
	}
	total, failures := 0, 0
	for i, s := range j.Suites {
		c := doc.Cells[i]
		if s.Name != c.Key() {
			t.Errorf("suite %d is %q, want %q", i, s.Name, c.Key())
		}
		names := map[string]bool{}
		for _, tc := range s.Cases {
			names[tc.Name] = true
			total++
			if tc.Failure != nil {
				failures++
			}
		}
		for _, inv := range c.Invariants {
			if !names[inv.Name] {
				t.Errorf("%s: no test case for invariant %q", c.Key(), inv.Name)
			}
		}
	}
	if j.Tests != total || j.Fails != failures {
		t.Errorf("root counts tests=%d failures=%d, cases say %d and %d", j.Tests, j.Fails, total, failures)
	}
	// The broken invariant of a strategy expected to hold fails with its
	// figures; the oversell of the naive strategy does not fail.
	found := false
	for _, s := range j.Suites {
		for _, tc := range s.Cases {
			switch {
			case s.Name == "oversell/rueidis/watch" && tc.Name == "stock never observed negative":
				found = true
				if tc.Failure == nil || !strings.Contains(tc.Failure.Message, "-3") || !strings.Contains(tc.Failure.Body, "stock_min_observed = -3") {
					t.Errorf("broken invariant case: %+v", tc.Failure)
				}
			case strings.HasSuffix(s.Name, "/naive") && tc.Failure != nil:
				t.Errorf("%s %q fails, but the naive strategy is expected to break", s.Name, tc.Name)
			case strings.HasPrefix(s.Name, "stock.deduct/") && strings.HasPrefix(tc.Name, "gate stock.deduct:error_rate") && tc.Failure == nil:
				t.Errorf("%s: the error-rate gate should fail", s.Name)
			}
		}
	}
	if !found {
		t.Error("no case for the broken invariant")
	}
	// An INCONCLUSIVE cell neither passes nor fails: every case is skipped
	// with the reason.
	for _, s := range j.Suites {
		if s.Name != "lock-race/goredis/token" {
			continue
		}
		for _, tc := range s.Cases {
			if tc.Failure != nil || tc.Skipped == nil {
				t.Errorf("INCONCLUSIVE cell: case %q is not skipped", tc.Name)
			}
		}
	}
}

func TestBenchfmtReadsTheOutput(t *testing.T) {
	doc := readFixture(t)
	r := benchfmt.NewReader(bytes.NewReader(render(t, doc, FormatBenchFmt)), "paybench.txt")
	var names []string
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			t.Errorf("syntax error: %v", rec)
		case *benchfmt.Result:
			names = append(names, rec.Name.String())
			for _, unit := range []string{"sec/op", "p50-sec/op", "p99-sec/op", "ops/s"} {
				if v, ok := rec.Value(unit); !ok || v <= 0 {
					t.Errorf("%s: unit %s = %v, %v", rec.Name, unit, v, ok)
				}
			}
			if rec.GetConfig("goos") != "linux" || rec.GetConfig("redis") != "7.0.15" {
				t.Errorf("%s: config goos=%q redis=%q", rec.Name, rec.GetConfig("goos"), rec.GetConfig("redis"))
			}
			if base, parts := rec.Name.Parts(); len(parts) != 3 || string(parts[2]) != "-2" {
				t.Errorf("%s: base %s parts %q", rec.Name, base, parts)
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	measured := 0
	for _, c := range doc.Cells {
		if c.Ops > 0 && c.Verdict != result.Inconclusive {
			measured++
		}
	}
	if len(names) != measured {
		t.Errorf("%d results, want %d", len(names), measured)
	}
	if !contains(names, "StockDeduct/backend=rueidis/strategy=lua-2") || !contains(names, "Oversell/backend=goredis/strategy=naive-2") {
		t.Errorf("names: %q", names)
	}
	if got := r.Units().GetBetter("ops/s"); got != 1 {
		t.Errorf("ops/s better = %d, want +1 (higher)", got)
	}
}

func TestBenchNames(t *testing.T) {
	for _, tc := range []struct {
		cell  result.Cell
		procs int
		want  string
	}{
		{result.Cell{Operation: "stock.deduct", Backend: "rueidis", Strategy: "lua"}, 1, "StockDeduct/backend=rueidis/strategy=lua"},
		{result.Cell{Scenario: "duplicate-submit", Backend: "goredis", Strategy: "set-nx"}, 4, "DuplicateSubmit/backend=goredis/strategy=set-nx-4"},
		{result.Cell{Scenario: "lock-race", Backend: "goredis", Strategy: "shard-8"}, 1, "LockRace/backend=goredis/strategy=shard_8"},
		{result.Cell{Scenario: "x", Backend: "a b", Strategy: "c/d"}, 1, "X/backend=a_b/strategy=c_d"},
	} {
		if got := BenchName(&tc.cell, tc.procs); got != tc.want {
			t.Errorf("BenchName(%+v) = %q, want %q", tc.cell, got, tc.want)
		}
	}
}

func TestHgrmPrintsPercentiles(t *testing.T) {
	doc := readFixture(t)
	var buf bytes.Buffer
	if err := Hgrm(&buf, doc, HgrmOptions{Cells: "oversell/goredis/lua", Histogram: "step:deduct"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"# oversell/goredis/lua step:deduct", "Value", "Percentile", "TotalCount", "#[Mean", "#[Max"} {
		if !strings.Contains(out, want) {
			t.Errorf("hgrm lacks %q:\n%s", want, out)
		}
	}
	if err := Hgrm(&buf, doc, HgrmOptions{Cells: "nosuch"}); err == nil {
		t.Error("no error when no histogram matches")
	}
	if err := Hgrm(&buf, doc, HgrmOptions{Cells: "[x"}); err == nil {
		t.Error("no error for a bad glob")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestTextErrorLinesNameTheCause(t *testing.T) {
	doc := &result.Document{Kind: "run", Cells: []result.Cell{{
		Scenario: "oversell", Backend: "goredis", Strategy: "lua", Verdict: result.Error,
		Errors: map[string]int64{"noperm": 1000, "timeout": 2, "connection": 2},
		ErrorSamples: map[string]string{
			"noperm":  "NOPERM this user has no permissions to run the 'evalsha' command",
			"timeout": "goredis stock lua: deduct: i/o timeout",
		},
	}}}
	out := string(render(t, doc, "text"))
	want := "oversell goredis/lua ERROR: \n" +
		"    errors: noperm ×1000 — \"NOPERM this user has no permissions to run the 'evalsha' command\"\n" +
		"    errors: connection ×2\n" +
		"    errors: timeout ×2 — \"goredis stock lua: deduct: i/o timeout\"\n"
	if !strings.Contains(out, want) {
		t.Fatalf("text output:\n%s\nwant the lines:\n%s", out, want)
	}
}
