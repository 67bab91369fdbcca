package runner

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// pt is a one-second point ending at t: ops operations with p99 µs, and
// failures by class.
func pt(t float64, ops, p99 int64, errs map[string]int64) result.Point {
	p := result.Point{T: t, Ops: ops, P50: p99 / 2, P99: p99, Max: p99}
	for _, v := range errs {
		p.Errors += v
	}
	if p.Errors > 0 {
		p.ErrorsByClass = errs
	}
	return p
}

// fired is a fault log entry that fired count times from start to end.
func fired(spec string, start, end float64, count int) result.Fault {
	return result.Fault{Spec: spec, Start: start, End: end, Count: count}
}

func TestSeriesFaultFigures(t *testing.T) {
	conn := func(n int64) map[string]int64 { return map[string]int64{impl.ClassConnection: n} }
	steady := []result.Point{pt(1, 1000, 900, nil), pt(2, 1000, 1000, nil), pt(3, 1000, 1100, nil), pt(4, 1000, 950, nil), pt(5, 1000, 1000, nil)}
	for _, tc := range []struct {
		name   string
		series []result.Point
		start  float64
		log    []result.Fault
		want   map[string]float64
	}{
		{
			// The series starts 0.5 s after the faults' origin: the pause
			// covers 1.5–2.51 on its axis, intervals 2 and 3. The
			// stalled operations end in interval 3, clean: no recovery
			// time.
			name:   "a pause shifted onto the series",
			series: []result.Point{pt(1, 1000, 900, nil), pt(2, 500, 900_000, nil), pt(3, 1500, 990_000, nil), pt(4, 1000, 1200, nil)},
			start:  0.5,
			log:    []result.Fault{fired("pause:1s@2s", 2.0, 3.01, 1)},
			want: map[string]float64{figRecovery: 0, figUnrecovered: 0, figP99During: 990_000, figP99Outside: 1200,
				figErrorsDuring: 0, figErrorsOutside: 0},
		},
		{
			// Killed connections fail operations until the end of the
			// interval after the kill; the next interval is clean.
			name:   "kill-conns: recovery to the first clean interval",
			series: []result.Point{pt(1, 1000, 900, nil), pt(2, 1000, 1000, nil), pt(3, 800, 40_000, conn(5)), pt(4, 900, 2000, conn(2)), pt(5, 1000, 1000, nil)},
			log:    []result.Fault{fired("kill-conns@2s", 2.0, 2.003, 1)},
			want: map[string]float64{figRecovery: 1.997, figUnrecovered: 0, figP99During: 40_000, figP99Outside: 2000,
				figErrorsDuring: 5, figErrorsOutside: 2},
		},
		{
			// Contention is the operation's own "no", not a failure: it
			// neither delays recovery nor counts as an error.
			name:   "refusals are not failures",
			series: []result.Point{pt(1, 1000, 900, nil), pt(2, 1000, 1000, conn(3)), pt(3, 1000, 1000, map[string]int64{impl.ClassContention: 40}), pt(4, 1000, 1000, nil)},
			log:    []result.Fault{fired("kill-conns@1.5s", 1.5, 1.51, 1)},
			want: map[string]float64{figRecovery: 0.49, figUnrecovered: 0, figP99During: 1000, figP99Outside: 1000,
				figErrorsDuring: 3, figErrorsOutside: 0},
		},
		{
			// No clean interval after the restart: recovery counts to the
			// series' end, and the fault is counted as unrecovered.
			name:   "never recovered",
			series: []result.Point{pt(1, 1000, 900, nil), pt(2, 310, 5000, conn(300)), pt(3, 900, 300, map[string]int64{impl.ClassRefused: 900}), pt(4, 30, 9000, conn(10))},
			log:    []result.Fault{fired("restart@1s", 1.0, 1.2, 1)},
			want: map[string]float64{figRecovery: 2.8, figUnrecovered: 1, figP99During: 5000, figP99Outside: 9000,
				figErrorsDuring: 300, figErrorsOutside: 910},
		},
		{
			// An oom to the cell's end ended after the series: no
			// recovery to measure; everything from its start is during.
			name:   "a fault to the cell's end",
			series: steady,
			log:    []result.Fault{fired("oom@2500ms", 2.5, 5.3, 1)},
			want:   map[string]float64{figP99During: 1100, figP99Outside: 1000, figErrorsDuring: 0, figErrorsOutside: 0},
		},
		{
			name:   "a fault that never fired is not a fault",
			series: steady,
			log:    []result.Fault{{Spec: "oom@10s"}},
			want:   map[string]float64{figP99Outside: 1100, figErrorsDuring: 0, figErrorsOutside: 0},
		},
		{
			// A fault of no length belongs to the interval holding its
			// instant, (1, 2], not to the next one.
			name:   "an instant fault",
			series: steady,
			log:    []result.Fault{fired("kill-conns@2s", 2.0, 2.0, 1)},
			want: map[string]float64{figRecovery: 0, figUnrecovered: 0, figP99During: 1000, figP99Outside: 1100,
				figErrorsDuring: 0, figErrorsOutside: 0},
		},
		{
			// A scenario's setup took 3 s: the fault was over before its
			// series started, and nothing of it shows.
			name:   "a fault before the series",
			series: steady,
			start:  3,
			log:    []result.Fault{fired("pause:500ms@1s", 1.0, 1.5, 1)},
			want:   map[string]float64{figP99Outside: 1100, figErrorsDuring: 0, figErrorsOutside: 0},
		},
		{
			// The slower of two recoveries is the cell's.
			name: "the worst of two faults",
			series: []result.Point{pt(1, 1000, 900, nil), pt(2, 900, 3000, conn(4)), pt(3, 1000, 1000, nil), pt(4, 900, 3000, conn(4)),
				pt(5, 900, 2500, conn(1)), pt(6, 1000, 1000, nil)},
			log: []result.Fault{fired("kill-conns@1.2s", 1.2, 1.25, 1), fired("kill-conns@3.5s", 3.5, 3.6, 1)},
			want: map[string]float64{figRecovery: 1.4, figUnrecovered: 0, figP99During: 3000, figP99Outside: 2500,
				figErrorsDuring: 8, figErrorsOutside: 1},
		},
		{
			// A document written before errors_by_class: every error
			// counts.
			name:   "points without classes",
			series: []result.Point{{T: 1, Ops: 100, P99: 900}, {T: 2, Ops: 100, Errors: 7, P99: 900}, {T: 3, Ops: 100, P99: 900}},
			log:    []result.Fault{fired("kill-conns@1.5s", 1.5, 1.5, 1)},
			want: map[string]float64{figRecovery: 0.5, figUnrecovered: 0, figP99During: 900, figP99Outside: 900,
				figErrorsDuring: 7, figErrorsOutside: 0},
		},
		{
			name: "no series",
			log:  []result.Fault{fired("pause:1s@0s", 0, 1, 1)},
			want: map[string]float64{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := seriesFaultFigures(tc.series, tc.start, tc.log)
			if !maps.Equal(got, tc.want) {
				t.Fatalf("figures\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// The runner adds the fault figures, with their merge modes, to a cell
// under faults only, and counts the connections the server accepted
// since the cell's start.
func TestFaultFiguresOnACell(t *testing.T) {
	p := testPlan(t)
	p.Faults = []faults.Spec{{Kind: faults.KillConns, At: time.Second}}
	r := &run{plan: p, doc: &result.Document{}}
	ctx := context.Background()
	if _, err := r.cellKeyspace("fake", "goredis", "x"); err != nil {
		t.Fatal(err)
	}
	cell := func(log ...result.Fault) result.Cell {
		return result.Cell{Ops: 2000, Series: []result.Point{pt(1, 1000, 900, nil), pt(2, 1000, 1200, nil)}, Faults: log,
			Figures: map[string]float64{"stock_final": 3}}
	}
	for _, tc := range []struct {
		name     string
		cell     result.Cell
		dial     int // new connections opened during the cell
		want     bool
		restarts bool
	}{
		{"no faults, no figures", result.Cell{Ops: 10}, 0, false, false},
		{"under a fault", cell(fired("kill-conns@1s", 1, 1.01, 1)), 3, true, false},
		{"across a restart: since the restart", cell(result.Fault{Spec: "restart@1s", Kind: faults.Restart, Start: 1, End: 1.2, Count: 1}), 1, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := r.watchServer(ctx)
			if !m.conns.ok {
				t.Fatalf("the connection counter was not read: %+v", m)
			}
			for range tc.dial {
				dial(t, p.Server.URL)
			}
			c := r.faultFigures(ctx, tc.cell, m)
			if !tc.want {
				if c.Figures != nil || c.FigureMerge != nil {
					t.Fatalf("figures %v, merge %v on a cell without faults", c.Figures, c.FigureMerge)
				}
				return
			}
			if c.Figures["stock_final"] != 3 {
				t.Errorf("the scenario's own figures were lost: %v", c.Figures)
			}
			opened, ok := c.Figures[figConnsOpened]
			switch {
			case !ok:
				t.Fatalf("no %s: %v", figConnsOpened, c.Figures)
			case tc.restarts && opened < float64(m.conns.n):
				// No real restart here: the counter since "the restart"
				// is the server's whole count.
				t.Errorf("%s %v after a restart, want the server's count (at least %d)", figConnsOpened, opened, m.conns.n)
			case !tc.restarts && opened < float64(tc.dial):
				t.Errorf("%s %v, want at least the %d dialled", figConnsOpened, opened, tc.dial)
			}
			for k := range c.Figures {
				if k != "stock_final" && c.FigureMerge[k] != faultFigureMerge[k] {
					t.Errorf("figure %s merges as %q, want %q", k, c.FigureMerge[k], faultFigureMerge[k])
				}
			}
			if _, ok := c.Figures[figErrorsDuring]; !ok {
				t.Errorf("no series figures: %v", c.Figures)
			}
		})
	}
}

// dial opens one connection to the server and closes it.
func dial(t *testing.T, url string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// A real pause during an open-loop load cell and a scenario cell: the
// series sits on the faults' axis (series_start_s covers the warm-up),
// the stalled operations show in the p99 during the fault, and the
// figures are in the cell.
func TestCellsUnderARealFault(t *testing.T) {
	srv := redistest.Spawn(t)
	p := testPlan(t)
	p.Server = srv
	p.Backends = []string{impl.GoRedis}
	p.Faults = []faults.Spec{{Kind: faults.Pause, Arg: 300 * time.Millisecond, At: 600 * time.Millisecond}}
	const warmup = 200 * time.Millisecond
	stock, err := scenarios.LookupOperation("stock.deduct")
	if err != nil {
		t.Fatal(err)
	}
	p.Scenarios = []ScenarioCells{{Scenario: oversell(t, "--buyers", "200"), Strategies: []string{impl.StockLua}}}
	p.Loads = []LoadCells{{Operation: stock, Strategies: []string{impl.StockLua},
		Shape: LoadShape{Duration: 1500 * time.Millisecond, Warmup: warmup, Pacer: bench.ConstantPacer{Rate: 1000}}}}
	doc, err := runPlan(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Cells) != 2 {
		t.Fatalf("%d cells", len(doc.Cells))
	}
	sc, load := doc.Cells[0], doc.Cells[1]
	for _, c := range doc.Cells {
		t.Logf("%s: %s; series_start_s %v, faults %+v, figures %v", c.Key(), c.Verdict, c.SeriesStart, c.Faults, c.Figures)
	}
	if sc.SeriesStart <= 0 || len(sc.Faults) != 1 {
		t.Errorf("scenario cell: series_start_s %v, faults %+v", sc.SeriesStart, sc.Faults)
	}
	if _, ok := sc.Figures[figConnsOpened]; !ok {
		t.Errorf("scenario cell: no %s in %v", figConnsOpened, sc.Figures)
	}
	f := load.Faults[0]
	if f.Count != 1 || f.Error != "" {
		t.Fatalf("load cell: the pause did not fire: %+v (%s)", f, load.Summary)
	}
	if load.SeriesStart < warmup.Seconds() || load.SeriesStart > load.ElapsedSec+warmup.Seconds()+f.End {
		t.Errorf("load cell: series_start_s %v with a %s warm-up", load.SeriesStart, warmup)
	}
	if f.Start < load.SeriesStart || f.End-load.SeriesStart > load.Series[len(load.Series)-1].T {
		t.Skipf("the pause was not within the series (a slow machine): %+v, series start %v", f, load.SeriesStart)
	}
	// The operations due during the 300 ms pause waited for it.
	if got := load.Figures[figP99During]; got < 100_000 {
		t.Errorf("p99 during the pause %v µs; figures %v, series %+v", got, load.Figures, load.Series)
	}
	for _, k := range []string{figErrorsDuring, figErrorsOutside, figConnsOpened, figRecovery} {
		if _, ok := load.Figures[k]; !ok {
			t.Errorf("load cell: no %s in %v", k, load.Figures)
		}
	}
	if load.Figures[figUnrecovered] != 0 {
		t.Errorf("a pause without failures left the cell unrecovered: %v", load.Figures)
	}
}
