package reports

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/paybench/paybench/reports/result"
)

// palette colours the backends of a comparison, in the order they appear.
var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // green
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // purple
	{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}, // brown
}

func colour(i int) color.RGBA { return palette[i%len(palette)] }

// plotFont is the plots' font: Liberation Sans, whose metrics match
// Arial and Helvetica, which the SVG names as fallbacks.
var plotFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// newPlot returns a plot with paybench's fonts and a title.
func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = font.From(plotFont, 10)
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(plotFont, 9)
		ax.Tick.Label.Font = font.From(plotFont, 8)
	}
	p.Legend.TextStyle.Font = font.From(plotFont, 8)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.ThumbnailWidth = 14
	return p
}

// curve is one latency distribution of a percentile plot.
type curve struct {
	label  string
	h      *hdrhistogram.Histogram
	colour color.RGBA
	dashed bool
}

// percentileTicks label the x axis of a percentile plot, at 1/(1-q).
var percentileTicks = []struct {
	x     float64
	label string
}{{1, "0%"}, {2, "50%"}, {10, "90%"}, {100, "99%"}, {1e3, "99.9%"}, {1e4, "99.99%"}, {1e5, "99.999%"}, {1e6, "99.9999%"}}

// percentilePlot draws latency (ms) by percentile, both axes on a log scale,
// as HdrHistogram's plotter does: the tail takes most of the width.
func percentilePlot(title string, curves []curve) (*plot.Plot, error) {
	p := newPlot(title)
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	maxX, minY, maxY := 1.0, math.Inf(1), math.Inf(-1)
	for _, cv := range curves {
		if cv.h == nil || cv.h.TotalCount() == 0 {
			continue
		}
		var pts plotter.XYs
		for _, b := range cv.h.CumulativeDistributionWithTicks(hgrmTicks) {
			if b.Quantile >= 100 {
				break
			}
			x := 1 / (1 - b.Quantile/100)
			y := math.Max(float64(b.ValueAt)/1e3, 1e-3)
			pts = append(pts, plotter.XY{X: x, Y: y})
			maxX, minY, maxY = math.Max(maxX, x), math.Min(minY, y), math.Max(maxY, y)
		}
		if len(pts) == 0 {
			continue
		}
		if len(pts) == 1 { // one value: a flat line to 50%
			pts = append(pts, plotter.XY{X: 2, Y: pts[0].Y})
			maxX = math.Max(maxX, 2)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", cv.label, err)
		}
		l.Color = cv.colour
		l.Width = vg.Points(1.2)
		if cv.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l)
		p.Legend.Add(cv.label, l)
	}
	var ticks []plot.Tick
	for _, t := range percentileTicks {
		if t.x <= maxX*1.0001 {
			ticks = append(ticks, plot.Tick{Value: t.x, Label: t.label})
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = 1, math.Max(maxX, 2)
	if math.IsInf(minY, 0) {
		minY, maxY = 1e-3, 1
	}
	// Whole decades, so the log ticks always show.
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(minY)))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(maxY*1.0001)))
	p.Add(plotter.NewGrid())
	return p, nil
}

// seriesPlots draws throughput (operations per second) and p99 (ms) per
// interval of the cell's series, as steps: each interval's value spans
// the interval, from the previous point's time to its own, so that it
// lines up with the faults shaded over the same stretch of time. Nil when
// the series has fewer than two intervals.
func seriesPlots(c *result.Cell, col color.RGBA) (tput, p99 *plot.Plot, err error) {
	if len(c.Series) == 0 {
		return nil, nil, nil
	}
	var rate, lat plotter.XYs
	prev := 0.0
	for _, pt := range c.Series {
		start, dt := prev, pt.T-prev
		prev = pt.T
		if dt <= 0 {
			continue
		}
		r, l := float64(pt.Ops)/dt, float64(pt.P99)/1e3
		if len(rate) == 0 { // where the first step starts
			rate = append(rate, plotter.XY{X: start, Y: r})
			lat = append(lat, plotter.XY{X: start, Y: l})
		}
		rate = append(rate, plotter.XY{X: pt.T, Y: r})
		lat = append(lat, plotter.XY{X: pt.T, Y: l})
	}
	if len(rate) < 3 {
		return nil, nil, nil
	}
	bands := faultSpans(c)
	mk := func(title, ylabel string, pts plotter.XYs) (*plot.Plot, error) {
		p := newPlot(title)
		p.X.Label.Text = "time (s)"
		p.Y.Label.Text = ylabel
		p.X.Min = 0
		p.Y.Min = 0
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color, l.StepStyle = col, plotter.PreStep
		l.Width = vg.Points(1.2)
		// The bands go under the grid and the line, their labels over,
		// in headroom above the data so that the line never crosses
		// them.
		if len(bands) > 0 {
			p.Add(faultBands{spans: bands})
			top := 0.0
			for _, pt := range pts {
				top = math.Max(top, pt.Y)
			}
			if top > 0 {
				free := math.Min(0.1+0.08*float64(len(bands)), 0.5)
				p.Y.Max = top / (1 - free)
				// A maximum that is not a round number makes the
				// default ticks print needless decimals (5000.00).
				p.Y.Tick.Marker = trimmedTicks{}
			}
		}
		p.Add(plotter.NewGrid(), l)
		if len(bands) > 0 {
			p.Add(faultBands{spans: bands, labels: true})
		}
		if len(c.Stages) > 0 {
			starts := make([]float64, len(c.Stages))
			for i, s := range c.Stages {
				starts[i] = s.Start
			}
			p.Add(stageMarks{starts: starts})
		}
		return p, nil
	}
	if tput, err = mk("throughput per interval", "ops/s", rate); err != nil {
		return nil, nil, err
	}
	if target := stageTargets(c); len(target) > 0 {
		// The stages' schedule, dashed under the achieved rate.
		l, err := plotter.NewLine(target)
		if err != nil {
			return nil, nil, err
		}
		l.Color, l.Width, l.Dashes = stageColour, vg.Points(0.8), []vg.Length{vg.Points(4), vg.Points(2)}
		tput.Add(l)
		tput.Legend.Add("target", l)
		tput.Legend.Top = true
	}
	if p99, err = mk("p99 per interval", "p99 (ms)", lat); err != nil {
		return nil, nil, err
	}
	return tput, p99, nil
}

// faultSpan is a fault that fired, on the series' time axis.
type faultSpan struct {
	from, to float64 // seconds since the series' start
	label    string
}

// faultSpans places the cell's faults that fired on its series' axis:
// from the first firing's start to the last one's end, shifted by the
// series' start.
func faultSpans(c *result.Cell) []faultSpan {
	var out []faultSpan
	for _, f := range c.Faults {
		if f.Count == 0 {
			continue
		}
		label := f.Spec
		if f.Count > 1 {
			label += fmt.Sprintf(" ×%d", f.Count)
		}
		out = append(out, faultSpan{from: f.Start - c.SeriesStart, to: max(f.End, f.Start) - c.SeriesStart, label: label})
	}
	return out
}

// Colours of the fault bands: a translucent red, and a dark red for their
// labels.
var (
	faultFill  = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x2e}
	faultLabel = color.RGBA{R: 0x9a, G: 0x1b, B: 0x1c, A: 0xff}
)

// faultBandMin is the narrowest a band is drawn, so that an instant fault
// (a kill) still shows.
const faultBandMin = 2 // points

// faultBands draws faults as shaded bands across the plot's height (not
// a data range: they never stretch the axes, and are clipped to them),
// or, with labels, their specs at the top of the bands, one line per
// fault so that overlapping faults stay readable.
type faultBands struct {
	spans  []faultSpan
	labels bool
}

// Plot implements plot.Plotter.
func (b faultBands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := draw.TextStyle{Color: faultLabel, Font: font.From(plotFont, 7), Handler: plot.DefaultTextHandler}
	line := sty.Height("M") * 1.15
	pad := vg.Points(2)
	for i, sp := range b.spans {
		if sp.to < p.X.Min || sp.from > p.X.Max {
			continue
		}
		x0, x1 := trX(max(sp.from, p.X.Min)), trX(min(sp.to, p.X.Max))
		if w := vg.Points(faultBandMin); x1-x0 < w {
			mid := (x0 + x1) / 2
			x0, x1 = max(mid-w/2, c.Min.X), min(mid+w/2, c.Max.X)
		}
		if !b.labels {
			c.FillPolygon(faultFill, []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
			continue
		}
		// Left-aligned inside the band, unless that runs past the
		// plot's right edge: then right-aligned to the band's end.
		at := vg.Point{X: x0 + pad, Y: c.Max.Y - pad - vg.Length(i)*line}
		sty.XAlign, sty.YAlign = draw.XLeft, draw.YTop
		if at.X+sty.Width(sp.label) > c.Max.X {
			at.X, sty.XAlign = max(x1-pad, c.Min.X+sty.Width(sp.label)), draw.XRight
		}
		c.FillText(sty, at, sp.label)
	}
}

// trimmedTicks are plot.DefaultTicks with the trailing zeros of their
// decimals dropped: 5000, 2500, 0.5 rather than 5000.00, 2500.00, 0.50.
type trimmedTicks struct{}

// Ticks implements plot.Ticker.
func (trimmedTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if strings.Contains(t.Label, ".") && !strings.ContainsAny(t.Label, "eE") {
			ticks[i].Label = strings.TrimSuffix(strings.TrimRight(t.Label, "0"), ".")
		}
	}
	return ticks
}

// cellSVG draws one cell: its percentile plot (corrected against
// uncorrected) and, when it has a series, throughput and p99 over time,
// with the faults that fired during the cell as shaded bands.
func cellSVG(c *result.Cell, col color.RGBA) (string, error) {
	corr, err := CellHistogram(c, result.HistogramCorrected)
	if err != nil {
		return "", err
	}
	unc, err := CellHistogram(c, result.HistogramUncorrected)
	if err != nil {
		return "", err
	}
	if corr == nil && unc == nil && len(c.Series) == 0 {
		return "", nil
	}
	var curves []curve
	if corr != nil && unc != nil && corr.Equals(unc) {
		curves = append(curves, curve{label: "corrected = uncorrected (closed loop)", h: corr, colour: col})
	} else {
		curves = append(curves, curve{label: "corrected (from intended start)", h: corr, colour: col},
			curve{label: "uncorrected (from send)", h: unc, colour: shade(col), dashed: true})
	}
	pp, err := percentilePlot("latency by percentile", curves)
	if err != nil {
		return "", err
	}
	row := []*plot.Plot{pp}
	tput, p99, err := seriesPlots(c, col)
	if err != nil {
		return "", err
	}
	if tput != nil {
		row = append(row, tput, p99)
	}
	return renderSVG([][]*plot.Plot{row}, vg.Length(len(row))*3.3*vg.Inch, 2.5*vg.Inch)
}

// shade darkens a colour, for the uncorrected curve.
func shade(c color.RGBA) color.RGBA {
	return color.RGBA{R: c.R / 2, G: c.G / 2, B: c.B / 2, A: c.A}
}

// comparisonSVG overlays the percentile curves of a row's cells, one
// colour per backend (corrected solid, uncorrected dashed when it
// differs).
func comparisonSVG(r *Row, backends []string) (string, error) {
	var curves []curve
	for i, b := range backends {
		c := r.Cells[b]
		if c == nil {
			continue
		}
		corr, err := CellHistogram(c, result.HistogramCorrected)
		if err != nil {
			return "", err
		}
		unc, err := CellHistogram(c, result.HistogramUncorrected)
		if err != nil {
			return "", err
		}
		if corr != nil {
			curves = append(curves, curve{label: b, h: corr, colour: colour(i)})
		}
		if unc != nil && (corr == nil || !corr.Equals(unc)) {
			curves = append(curves, curve{label: b + " uncorrected", h: unc, colour: colour(i), dashed: true})
		}
	}
	if len(curves) < 2 {
		return "", nil
	}
	p, err := percentilePlot(r.Label()+": backends compared", curves)
	if err != nil {
		return "", err
	}
	return renderSVG([][]*plot.Plot{{p}}, 6*vg.Inch, 3*vg.Inch)
}

// overviewSVG draws the backend-vs-backend comparison of every row that
// ran on more than one backend: a dot per backend for throughput and for
// p99, on log scales (a suite spans several orders of magnitude), one
// colour per backend, the rows in matrix order from the top.
func overviewSVG(m *Matrix) (string, error) {
	var rows []*Row
	for _, r := range m.Rows {
		n := 0
		for _, c := range r.Cells {
			if c.Ops > 0 {
				n++
			}
		}
		if n > 1 {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 || len(m.Backends) < 2 {
		return "", nil
	}
	labels := make([]string, len(rows))
	for i, r := range rows {
		labels[len(rows)-1-i] = r.Label()
	}
	mk := func(title, xlabel string, value func(*result.Cell) float64) (*plot.Plot, error) {
		p := newPlot(title)
		p.X.Label.Text = xlabel
		p.NominalY(labels...)
		p.Y.Tick.Label.Font = font.From(plotFont, 8)
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Add(plotter.NewGrid())
		lo, hi := math.Inf(1), math.Inf(-1)
		nb := len(m.Backends)
		for j, b := range m.Backends {
			var pts plotter.XYs
			for i, r := range rows {
				c := r.Cells[b]
				if c == nil || c.Ops == 0 {
					continue
				}
				v := value(c)
				if v <= 0 {
					continue
				}
				lo, hi = math.Min(lo, v), math.Max(hi, v)
				// Backends side by side within the row, the first on top.
				y := float64(len(rows)-1-i) + 0.3*(float64(nb-1)/2-float64(j))/float64(max(nb-1, 1))
				pts = append(pts, plotter.XY{X: v, Y: y})
			}
			if len(pts) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle.Color = colour(j)
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			sc.GlyphStyle.Radius = vg.Points(3)
			p.Add(sc) // the page gives the colours' legend
		}
		if math.IsInf(lo, 0) {
			lo, hi = 1, 10
		}
		p.X.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		p.X.Max = math.Pow(10, math.Ceil(math.Log10(hi*1.0001)))
		p.Y.Min, p.Y.Max = -0.6, float64(len(rows))-0.4
		return p, nil
	}
	tput, err := mk("throughput", "ops/s (log scale)", func(c *result.Cell) float64 { return c.ThroughputOps })
	if err != nil {
		return "", err
	}
	p99, err := mk("p99 latency (corrected)", "p99 in ms (log scale)", func(c *result.Cell) float64 { return float64(c.Latency.Corrected.P99) / 1e3 })
	if err != nil {
		return "", err
	}
	p99.HideY()
	h := vg.Length(len(rows))*vg.Points(16) + 1.2*vg.Inch
	return renderSVG([][]*plot.Plot{{tput, p99}}, 10*vg.Inch, h)
}

// renderSVG draws plots tiled on one SVG canvas and returns the SVG
// element, ready to inline in HTML: no XML prolog, no namespace URLs, and
// font fallbacks for machines without Liberation fonts.
func renderSVG(plots [][]*plot.Plot, w, h vg.Length) (string, error) {
	c := vgsvg.New(w, h)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(plots), Cols: len(plots[0]), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(plots, tiles, dc)
	for i, row := range plots {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("render svg: %w", err)
	}
	return inlineSVG(buf.String()), nil
}

// inlineSVG turns a standalone SVG document into an element for inline
// HTML.
func inlineSVG(s string) string {
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	s = strings.Replace(s, "\n\txmlns=\"http://www.w3.org/2000/svg\"", "", 1)
	s = strings.Replace(s, "\n\txmlns:xlink=\"http://www.w3.org/1999/xlink\"", "", 1)
	s = strings.ReplaceAll(s, "font-family:Liberation Sans;", "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")
	return strings.TrimSpace(s)
}
