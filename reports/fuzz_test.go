package reports

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path"
	"strings"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/reports/result"
)

// oneLine fails the fuzz input when err's message is empty or spans
// lines: the command line prints it as one line.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error message is not one line: %q", msg)
	}
}

// FuzzParseGates checks the --gate parser: an error wraps ErrBadGate and
// is one line; every gate of an accepted list has a known metric and
// operator, a finite non-negative value (a fraction for error_rate), a
// cell selector that is a valid glob, and reparses from its own Expr to
// the same gate; blank items are skipped, no other item is.
func FuzzParseGates(f *testing.F) {
	for _, s := range []string{
		"p99<5ms", " p50 <= 250us ", "p90<1.5ms", "p999<=0.2s", "max<2s", "mean<800µs", "P99<5ms",
		"throughput>20000", "throughput>=1e4ops/s", "errors<=0", "dropped<10", "error_rate<1%", "error_rate<0.001",
		"oversell/*/lua:p99<5ms", "stock.*:throughput>100", "p99<5ms, throughput>20000,,error_rate<1%",
		"", ",", "p99", "p99<", "<5ms", "p99=5ms", "p99<<5ms", "p99<5", "p99<-5ms", "error_rate<5", "error_rate<150%",
		"nosuch<5", ":p99<5ms", "[:p99<5ms", "a[b:p99<5ms", "a/b/c/d:p99<5ms", "p99<NaNms", "p99<Infms", "throughput>1e400",
		"x:y:p99<5ms", "p99<5ms\n", "p99\n<5ms",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		gates, err := ParseGates(list)
		if err != nil {
			if !errors.Is(err, ErrBadGate) {
				t.Fatalf("ParseGates(%q) error %v does not wrap ErrBadGate", list, err)
			}
			oneLine(t, err)
			return
		}
		items := 0
		for _, item := range strings.Split(list, ",") {
			if strings.TrimSpace(item) != "" {
				items++
			}
		}
		if len(gates) != items {
			t.Fatalf("ParseGates(%q) = %d gates for %d items", list, len(gates), items)
		}
		cell := &result.Cell{Scenario: "oversell", Backend: "rueidis", Strategy: "lua", Ops: 10}
		for _, g := range gates {
			switch {
			case !contains(GateMetrics, g.Metric):
				t.Fatalf("%q: metric %q", g.Expr, g.Metric)
			case !contains([]string{"<", "<=", ">", ">="}, g.Op):
				t.Fatalf("%q: operator %q", g.Expr, g.Op)
			case !(g.Value >= 0) || math.IsInf(g.Value, 0) || (g.Metric == MetricErrorRate && g.Value > 1):
				t.Fatalf("%q: value %v", g.Expr, g.Value)
			case g.Expr != strings.TrimSpace(g.Expr) || g.Expr == "":
				t.Fatalf("%q: expression not trimmed", g.Expr)
			}
			if g.Cells != "" {
				if _, err := path.Match(cellPattern(g.Cells), "oversell/rueidis/lua"); err != nil {
					t.Fatalf("%q: accepted selector %q is not a valid glob: %v", g.Expr, g.Cells, err)
				}
			}
			again, err := ParseGate(g.Expr)
			if err != nil || again != g {
				t.Fatalf("ParseGate(%q) = %+v; reparsed as %+v, %v", g.Expr, g, again, err)
			}
			// Judging never panics, and says which way it went.
			v := g.Measure(cell)
			_ = g.Selects(cell)
			_ = g.Holds(v)
			_ = g.FormatValue(g.Value)
		}
		doc := &result.Document{Schema: result.SchemaVersion, Cells: []result.Cell{*cell}}
		for _, o := range JudgeGates(doc, gates) {
			if d := DescribeGate(o); strings.ContainsAny(d, "\n\r") {
				t.Fatalf("gate outcome %q spans lines", d)
			}
		}
	})
}

// FuzzReadJSON checks reading a result document, as report, compare and
// merge do, on any bytes: it never panics; an error is one line; a
// document it reads re-encodes to JSON that reads back to the same
// encoding, renders in every format (an error, such as a damaged
// histogram, is allowed; a panic is not), compares with itself and
// merges with itself.
func FuzzReadJSON(f *testing.F) {
	seed, err := os.ReadFile("testdata/result.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"schema":1,"kind":"run","cells":[{"scenario":"oversell","backend":"goredis","strategy":"lua","ops":3,` +
		`"series":[{"t":1,"ops":3,"p50":10,"p99":20,"max":30}],"histograms":{"corrected":"not base64"}}]}`))
	f.Add([]byte(`{"schema":1,"kind":"load","cells":[{"operation":"stock.deduct","backend":"rueidis","strategy":"lua","ops":-1,"elapsed_sec":-2}]}`))
	f.Add([]byte(`{"schema":1,"cells":[{},{}]}`))
	f.Add([]byte(`{"schema":2}`))
	f.Add([]byte(`{"schema":1,"cells":[{"histograms":{"uncorrected":"HISTFAAAABx4nJNpmSzMwMDAzgABMJqRAQKYGBkAAHpCA8Y="}}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Add([]byte(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ReadJSON(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			oneLine(t, err)
			return
		}
		var enc1, enc2 bytes.Buffer
		if err := WriteJSON(&enc1, doc); err != nil {
			t.Fatalf("WriteJSON of a document ReadJSON read: %v", err)
		}
		again, err := ReadJSON(bytes.NewReader(enc1.Bytes()), "again.json")
		if err != nil {
			t.Fatalf("ReadJSON of WriteJSON's output: %v\n%s", err, enc1.Bytes())
		}
		if err := WriteJSON(&enc2, again); err != nil || !bytes.Equal(enc1.Bytes(), enc2.Bytes()) {
			t.Fatalf("JSON does not round-trip (%v):\n%s\n---\n%s", err, enc1.Bytes(), enc2.Bytes())
		}
		for _, format := range Formats {
			if err := Render(io.Discard, doc, format); err != nil {
				oneLine(t, err)
			}
		}
		_ = BuildMatrix(doc)
		_ = Tally(doc).String()
		cmp := Compare(doc, again, CompareOptions{MaxP99Increase: 0.1, MaxThroughputDrop: 0.1, MaxErrorRate: 0.01,
			Gates: []Gate{{Expr: "p99<5ms", Metric: MetricP99, Op: "<", Value: 5000}}})
		if err := cmp.WriteText(io.Discard); err != nil {
			t.Fatalf("compare text: %v", err)
		}
		if err := cmp.WriteMarkdown(io.Discard); err != nil {
			t.Fatalf("compare markdown: %v", err)
		}
		_ = cmp.Failures()
		merged, warnings, err := Merge([]MergeInput{{Name: "a.json", Doc: doc}, {Name: "b.json", Doc: again}})
		if err != nil {
			if !errors.Is(err, ErrMerge) {
				t.Fatalf("Merge error %v does not wrap ErrMerge", err)
			}
			oneLine(t, err)
			return
		}
		for _, w := range warnings {
			if w == "" || strings.ContainsAny(w, "\n\r") {
				t.Fatalf("merge warning %q is not one line", w)
			}
		}
		if err := WriteJSON(io.Discard, merged); err != nil {
			t.Fatalf("WriteJSON of a merged document: %v", err)
		}
		if err := Text(io.Discard, merged); err != nil {
			oneLine(t, err)
		}
	})
}

// FuzzDecodeHistogram checks decoding a cell's histogram (the base64 text
// a result file carries) on any text: it never panics; an error is one
// line; a histogram it decodes re-encodes to text that decodes to an
// equal histogram.
func FuzzDecodeHistogram(f *testing.F) {
	h := hdrhistogram.New(1, 60_000_000, 3)
	for _, v := range []int64{1, 100, 5000, 5000, 60_000_000} {
		_ = h.RecordValue(v)
	}
	enc, err := EncodeHistogram(h)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add("HISTFAAAABx4nJNpmSzMwMDAzgABMJqRAQKYGBkAAHpCA8Y=")
	f.Add("")
	f.Add("HISTFAAA")
	f.Add("not base64 at all")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := DecodeHistogram(s)
		if err != nil {
			oneLine(t, err)
			return
		}
		enc, err := EncodeHistogram(h)
		if err != nil {
			t.Fatalf("EncodeHistogram of a decoded histogram: %v", err)
		}
		if enc == "" {
			if h.TotalCount() != 0 {
				t.Fatalf("a histogram of %d values encodes to nothing", h.TotalCount())
			}
			return
		}
		again, err := DecodeHistogram(enc)
		if err != nil || !again.Equals(h) {
			t.Fatalf("decode(encode(h)) differs from h (%v)", err)
		}
	})
}
