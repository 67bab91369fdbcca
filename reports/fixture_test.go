package reports

import (
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/reports/result"
)

var update = flag.Bool("update", false, "rewrite testdata/result.json and the golden files")

// fixturePath is the fixed result every renderer's golden file comes from.
const fixturePath = "testdata/result.json"

// fixtureHistogram records n latencies (µs) drawn from a log-normal
// distribution around median µs with the given spread, from a fixed seed.
func fixtureHistogram(seed uint64, n int, median, spread float64) *hdrhistogram.Histogram {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	h := hdrhistogram.New(1, 60_000_000, 3)
	for range n {
		v := int64(median * math.Exp(spread*r.NormFloat64()))
		_ = h.RecordValue(min(max(v, 1), 60_000_000))
	}
	return h
}

// fixtureOpenLoop records n operations of an open loop: the uncorrected
// latency is log-normal around median µs; one operation in fifty queued
// behind a stall, which only the corrected latency counts.
func fixtureOpenLoop(seed uint64, n int, median, spread float64) (corrected, uncorrected *hdrhistogram.Histogram) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	corrected, uncorrected = hdrhistogram.New(1, 60_000_000, 3), hdrhistogram.New(1, 60_000_000, 3)
	for range n {
		v := max(int64(median*math.Exp(spread*r.NormFloat64())), 1)
		_ = uncorrected.RecordValue(v)
		if r.IntN(50) == 0 {
			v += int64(2000 + r.IntN(6000))
		}
		_ = corrected.RecordValue(v)
	}
	return corrected, uncorrected
}

// fixtureSeries makes a series of n one-second points, every other one
// with a time-out.
func fixtureSeries(seed uint64, n int, ops int64, p50, p99 int64) []result.Point {
	r := rand.New(rand.NewPCG(seed, 7))
	var out []result.Point
	for i := range n {
		jitter := 0.8 + 0.4*r.Float64()
		p := result.Point{
			T:   float64(i + 1),
			Ops: int64(float64(ops) * jitter), Errors: int64(i % 2),
			P50: p50, P99: int64(float64(p99) * jitter), Max: p99 * 3,
		}
		if p.Errors > 0 {
			p.ErrorsByClass = map[string]int64{"timeout": p.Errors}
		}
		out = append(out, p)
	}
	return out
}

// fixtureFaults are the load cells' faults, by backend: a pause, and a
// repeated kill with a fault that never fired.
var fixtureFaults = map[string][]result.Fault{
	"goredis": {{Spec: "pause:1s@2s", Kind: "pause", Method: "SIGSTOP/SIGCONT", Start: 2.0, End: 3.01, Count: 1}},
	"rueidis": {
		{Spec: "kill-conns@1s/1s", Kind: "kill-conns", Method: "CLIENT KILL ID", Start: 1.0, End: 3.004, Count: 3, Hits: 6},
		{Spec: "oom@10s", Kind: "oom"},
	},
}

// fixtureCell fills a cell's measurements from its histograms, as
// bench.Stats.Fill does.
func fixtureCell(t testing.TB, c result.Cell, corrected, uncorrected *hdrhistogram.Histogram, elapsed float64) result.Cell {
	t.Helper()
	c.Histograms = map[string]string{}
	for k, h := range map[string]*hdrhistogram.Histogram{result.HistogramCorrected: corrected, result.HistogramUncorrected: uncorrected} {
		enc, err := EncodeHistogram(h)
		if err != nil {
			t.Fatal(err)
		}
		c.Histograms[k] = enc
	}
	c.Ops = corrected.TotalCount()
	c.ElapsedSec = elapsed
	c.ThroughputOps = float64(c.Ops) / elapsed
	c.Latency = result.Latency{Corrected: result.Summarize(corrected), Uncorrected: result.Summarize(uncorrected)}
	return c
}

// buildFixture builds the fixed result: a suite over two backends with
// every verdict a renderer shows (REPRODUCED, PASS, FAIL, MEASURED,
// INCONCLUSIVE, UNSUPPORTED), a broken invariant in a strategy expected to
// hold, an
// open-loop load cell whose corrected and uncorrected latency differ, a
// step histogram, error classes, dropped operations, series, faults
// (load cells, their series starting after a warm-up) and gates.
// seed varies the measurements (for merge tests); seed 1 is the fixture.
func buildFixture(t testing.TB, seed uint64) *result.Document {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := &result.Document{
		Schema:   result.SchemaVersion,
		Kind:     "suite",
		Mode:     "quick",
		Tool:     result.Tool{Version: "0.1.0", Commit: "0123456789abcdef0123456789abcdef01234567"},
		Command:  []string{"paybench", "suite", "--quick", "--redis-url", "redis://:xxxxx@127.0.0.1:6379"},
		Started:  start,
		Finished: start.Add(83 * time.Second),
		Host:     "loadgen-1",
		Fairness: result.Fairness{
			GOMAXPROCS: 2, NumCPU: 2, GoVersion: "go1.26.8", OS: "linux", Arch: "amd64",
			Libraries: map[string]string{"github.com/redis/go-redis/v9": "v9.23.0", "github.com/redis/rueidis": "v1.0.79",
				"github.com/HdrHistogram/hdrhistogram-go": "v1.4.0"},
			Clients: map[string]map[string]string{
				"goredis": {"pool_size": "50", "protocol": "3"},
				"rueidis": {"pipeline_multiplex": "2", "protocol": "3"},
			},
			Server: result.Server{Kind: "spawn", Version: "7.0.15", Address: "redis://127.0.0.1:6379", Mode: "standalone"},
		},
	}
	s := seed * 100
	oversellFigures := func(sold, final, minSeen float64) map[string]float64 {
		return map[string]float64{"stock_initial": 100, "stock_final": final, "units_sold": sold, "orders": sold,
			"stock_min_observed": minSeen, "oversold_units": math.Max(0, sold-100), "buyers": 1000}
	}
	oversellMerge := map[string]string{"stock_initial": result.MergeSum, "units_sold": result.MergeSum, "stock_final": result.MergeSum,
		"oversold_units": result.MergeSum, "stock_min_observed": result.MergeMin}
	params := map[string]string{"stock": "100", "buyers": "1000", "quantity": "1"}
	invariants := func(sold, final, minSeen float64) []result.Invariant {
		return []result.Invariant{
			{Name: "final stock >= 0", Holds: final >= 0, Detail: "final stock " + ftoa(final), Rule: "stock_final >= 0"},
			{Name: "stock never observed negative", Holds: minSeen >= 0, Detail: "lowest stock seen " + ftoa(minSeen), Rule: "stock_min_observed >= 0"},
			{Name: "units sold <= initial stock", Holds: sold <= 100, Detail: "sold " + ftoa(sold) + " units of 100", Rule: "units_sold <= stock_initial"},
			{Name: "order records == successful purchases", Holds: true, Detail: ftoa(sold) + " order records, " + ftoa(sold) + " purchases answered OK"},
		}
	}
	type spec struct {
		backend, strategy string
		expect            result.Expectation
		sold, final, min  float64
		median, spread    float64
		summary           string
	}
	for i, sp := range []spec{
		{"goredis", "naive", result.Break, 439, 0, 0, 2850, 0.6, "sold 439 units of 100 — oversold by 339"},
		{"rueidis", "naive", result.Break, 402, 0, 0, 3100, 0.5, "sold 402 units of 100 — oversold by 302"},
		{"goredis", "lua", result.Hold, 100, 0, 0, 1890, 0.5, "sold 100 units of 100 in 100 orders, final stock 0"},
		{"rueidis", "lua", result.Hold, 100, 0, 0, 1240, 0.7, "sold 100 units of 100 in 100 orders, final stock 0"},
		{"goredis", "watch", result.Hold, 100, 0, 0, 5980, 0.9, "sold 100 units of 100 in 100 orders, final stock 0; 347 watch retries (max 9 per purchase)"},
		{"rueidis", "watch", result.Hold, 100, 0, -3, 9020, 1.0, "sold 100 units of 100, final stock 0, but stock read -3 mid-sale"},
	} {
		h := fixtureHistogram(s+uint64(i), 1000, sp.median, sp.spread)
		c := fixtureCell(t, result.Cell{
			Scenario: "oversell", Backend: sp.backend, Strategy: sp.strategy, Expect: sp.expect,
			Summary: sp.summary, Params: params, FigureMerge: oversellMerge,
			Figures:    oversellFigures(sp.sold, sp.final, sp.min),
			Invariants: invariants(sp.sold, sp.final, sp.min),
			Series:     fixtureSeries(s+uint64(i), 1, 1000, int64(sp.median), int64(sp.median*4)),
		}, h, h, 1000*sp.median/1e6/50)
		if sp.strategy == "lua" && sp.backend == "goredis" {
			step := fixtureHistogram(s+50, 1000, sp.median*0.6, 0.4)
			enc, err := EncodeHistogram(step)
			if err != nil {
				t.Fatal(err)
			}
			c.Histograms[result.HistogramStepPrefix+"deduct"] = enc
			sum := result.Summarize(step)
			c.Steps = map[string]result.Latency{"deduct": {Corrected: sum, Uncorrected: sum}}
		}
		c.Judge()
		doc.Cells = append(doc.Cells, c)
	}
	// A cell that ran but cannot be judged: the server restarted under it.
	// Its broken invariant is not a failure.
	lock := fixtureHistogram(s+30, 400, 2400, 0.8)
	c := fixtureCell(t, result.Cell{
		Scenario: "lock-race", Backend: "goredis", Strategy: "token", Expect: result.Hold,
		Verdict: result.Inconclusive, Reason: "the server restarted during the cell (run_id changed): the lock keys were lost",
		Summary: "400 acquisitions, max 2 inside",
		Params:  map[string]string{"ttl": "100ms", "work": "5ms-20ms", "acquire_timeout": "2s", "watchdog": "false"},
		Errors:  map[string]int64{"connection reset": 12},
		Invariants: []result.Invariant{
			{Name: "at most one holder inside", Holds: false, Detail: "max 2 inside"},
		},
		Series: fixtureSeries(s+30, 1, 400, 2400, 9600),
	}, lock, lock, 1.2)
	c.Judge()
	doc.Cells = append(doc.Cells, c)
	// Open-loop load cells: corrected latency (from the intended start)
	// carries the stalls the uncorrected one hides.
	for i, b := range []string{"goredis", "rueidis"} {
		corr, unc := fixtureOpenLoop(s+20+uint64(i), 20000, 180+40*float64(i), 0.35)
		c := fixtureCell(t, result.Cell{
			Operation: "stock.deduct", Backend: b, Strategy: "lua",
			Errors: map[string]int64{"timeout": int64(3 + i)}, Dropped: int64(2 * i),
			Params: map[string]string{"keys": "1000", "keydist": "zipf", "rate": "5000"},
			Series: fixtureSeries(s+40+uint64(i), 4, 5000, 180, 900+int64(i)*300),
			Faults: fixtureFaults[b], SeriesStart: 0.35,
		}, corr, unc, 4.1)
		if b == "goredis" {
			// The first message of each class; rueidis's cell stands for
			// a document written before error samples existed.
			c.ErrorSamples = map[string]string{"timeout": `goredis stock lua: deduct "sku:17": read tcp 127.0.0.1:50412->127.0.0.1:6379: i/o timeout`}
		}
		c.Judge()
		doc.Cells = append(doc.Cells, c)
	}
	doc.Cells = append(doc.Cells, result.Cell{
		Operation: "stock.deduct", Backend: "goredis", Strategy: "decr",
		Verdict: result.Unsupported, Error: "goredis: not supported",
	})
	gates, err := ParseGates("p99<20ms,stock.deduct:error_rate<0.01%")
	if err != nil {
		t.Fatal(err)
	}
	doc.Gates = JudgeGates(doc, gates)
	return doc
}

func ftoa(f float64) string { return FormatMetric("", f) }

// readFixture reads testdata/result.json, rewriting it first under -update.
func readFixture(t *testing.T) *result.Document {
	t.Helper()
	if *update {
		if err := WriteJSONFile(fixturePath, buildFixture(t, 1)); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := ReadJSONFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestFixtureIsTheBuiltOne checks that testdata/result.json is what
// buildFixture makes: the same document, the same histograms.
func TestFixtureIsTheBuiltOne(t *testing.T) {
	file := readFixture(t)
	built := roundTrip(t, buildFixture(t, 1))
	for i := range built.Cells {
		a, b := &built.Cells[i], &file.Cells[i]
		for _, k := range HistogramKeys(a) {
			ha, _ := CellHistogram(a, k)
			hb, err := CellHistogram(b, k)
			if err != nil || hb == nil || !ha.Equals(hb) {
				t.Errorf("%s %s: histogram differs from the built one (%v); run go test -update", a.Key(), k, err)
			}
		}
		a.Histograms, b.Histograms = nil, nil
	}
	if !reflect.DeepEqual(built, file) {
		t.Errorf("%s is not the built fixture; run go test ./reports -update", fixturePath)
	}
}

// roundTrip returns doc as it reads back from JSON.
func roundTrip(t *testing.T, doc *result.Document) *result.Document {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out result.Document
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reports -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (%d bytes, want %d); run go test ./reports -update and review the diff",
			path, len(got), len(want))
	}
}
