package reports

import (
	"fmt"
	"image/color"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/paybench/paybench/reports/result"
)

// StageLine describes one stage of a `load --stages` cell on one line:
//
//	stage 2 3.0–6.0s 1000→4000/s: target 2500/s, achieved 2497/s (7491 ops), dropped 0, errors 0, p50 310µs p99 1.20ms (from the send: 150µs, 800µs)
func StageLine(i int, s result.Stage) string {
	var errs int64
	for _, v := range s.Errors {
		errs += v
	}
	c, u := s.Latency.Corrected, s.Latency.Uncorrected
	return fmt.Sprintf("stage %d %.1f–%.1fs %s→%s/s: target %s/s, achieved %s/s (%d ops), dropped %d, errors %d, p50 %s p99 %s (from the send: %s, %s)",
		i+1, s.Start, s.End, rate(s.FromRate), rate(s.ToRate), rate(s.TargetRate), rate(s.ThroughputOps), s.Ops, s.Dropped, errs,
		FormatMicros(c.P50), FormatMicros(c.P99), FormatMicros(u.P50), FormatMicros(u.P99))
}

// SearchLine describes one step of a `load --find-max` search:
//
//	step 3 4000/s: met · achieved 3998/s, dropped 0, p99 1.20ms (from the send 800µs)
//	step 7 64000/s: FAILED p99<5ms (7.10ms) · achieved 51234/s, dropped 12, p99 7.10ms (from the send 2.00ms)
func SearchLine(i int, s result.SearchStep) string {
	verdict := "met"
	if !s.Met {
		verdict = "FAILED " + strings.Join(s.Failed, "; ")
	}
	return fmt.Sprintf("step %d %s/s: %s · achieved %s/s, dropped %d, p99 %s (from the send %s)",
		i+1, rate(s.Rate), verdict, rate(s.ThroughputOps), s.Dropped,
		FormatMicros(s.Latency.Corrected.P99), FormatMicros(s.Latency.Uncorrected.P99))
}

// shapeNotes returns a cell's stage and search lines.
func shapeNotes(c result.Cell) []string {
	var notes []string
	for i, s := range c.Stages {
		notes = append(notes, StageLine(i, s))
	}
	if c.Search != nil {
		for i, s := range c.Search.Steps {
			notes = append(notes, SearchLine(i, s))
		}
	}
	return notes
}

func rate(r float64) string { return strconv.FormatFloat(r, 'f', 0, 64) }

// stageMarks draws a cell's stage boundaries as dashed vertical lines
// across the plot (never stretching its axes), each labelled with the
// stage that starts there.
type stageMarks struct {
	starts []float64 // seconds since the series' start
}

// Plot implements plot.Plotter.
func (m stageMarks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	ls := draw.LineStyle{Color: stageColour, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}
	sty := draw.TextStyle{Color: stageColour, Font: font.From(plotFont, 7), Handler: plot.DefaultTextHandler, XAlign: draw.XLeft, YAlign: draw.YBottom}
	for i, t := range m.starts {
		if t < p.X.Min || t > p.X.Max {
			continue
		}
		x := trX(t)
		if i > 0 {
			c.StrokeLine2(ls, x, c.Min.Y, x, c.Max.Y)
		}
		c.FillText(sty, vg.Point{X: x + vg.Points(2), Y: c.Min.Y + vg.Points(2)}, "stage "+strconv.Itoa(i+1))
	}
}

// stageColour is the stage marks' grey.
var stageColour = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}

// stageTargets returns the stages' scheduled rate as a line: each stage
// ramps from its FromRate to its ToRate.
func stageTargets(c *result.Cell) plotter.XYs {
	var pts plotter.XYs
	for _, s := range c.Stages {
		pts = append(pts, plotter.XY{X: s.Start, Y: s.FromRate}, plotter.XY{X: s.End, Y: s.ToRate})
	}
	return pts
}
