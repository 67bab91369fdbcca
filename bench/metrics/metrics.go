// Package metrics exports a run's live figures as Prometheus metrics
// (--metrics-addr): every cell's engine hands its intervals to a Cell (a
// bench.Monitor), and an Exporter serves them all in the Prometheus
// exposition format, names prefixed paybench_, each series labelled by
// its cell (workload, backend, strategy).
//
// The figures are live views for dashboards; a run's final figures are
// still its result document's, from the engine's HDR histograms. Latency
// histograms are built from those same histograms once per interval, so
// nothing is added to the operations' own path: a histogram carries both
// classic buckets (ClassicBuckets, what a text scrape shows) and native
// buckets (schema NativeSchema), which a Prometheus that scrapes native
// histograms (the protobuf format) reads.
package metrics

import (
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/paybench/paybench/bench"
)

// Metric names, all under Namespace.
const (
	Namespace = "paybench"

	Operations = Namespace + "_operations_total"
	Errors     = Namespace + "_errors_total"
	Scheduled  = Namespace + "_scheduled_operations_total"
	Dropped    = Namespace + "_dropped_operations_total"
	Behind     = Namespace + "_behind_operations"
	InFlight   = Namespace + "_in_flight_operations"
	Workers    = Namespace + "_workers"
	Running    = Namespace + "_cell_running"
	Latency    = Namespace + "_latency_seconds"
)

// Names lists every metric the Exporter serves, in the order above. A
// histogram's series are Latency+"_bucket", "_sum" and "_count".
func Names() []string {
	return []string{Operations, Errors, Scheduled, Dropped, Behind, InFlight, Workers, Running, Latency}
}

// Label names. Every metric has the cell's three; Errors adds the class
// and Latency the measure.
const (
	LabelWorkload = "workload" // the scenario or the load operation
	LabelBackend  = "backend"
	LabelStrategy = "strategy"
	LabelClass    = "class"   // an impl error class
	LabelMeasure  = "latency" // MeasureCorrected or MeasureUncorrected
)

// Latency measures.
const (
	// MeasureCorrected is latency from each operation's intended start
	// (corrected for coordinated omission).
	MeasureCorrected = "corrected"
	// MeasureUncorrected is latency from the operation's send.
	MeasureUncorrected = "uncorrected"
)

// NativeSchema is the native histograms' schema: buckets grow by a
// factor of 2^(1/8), about 9 %.
const NativeSchema = 3

// ClassicBuckets are the latency histograms' classic upper bounds, in
// seconds.
var ClassicBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

var (
	cellLabels = []string{LabelWorkload, LabelBackend, LabelStrategy}
	descs      = struct {
		ops, errs, sched, dropped, behind, inflight, workers, running, latency *prometheus.Desc
	}{
		ops:      prometheus.NewDesc(Operations, "Measured operations that ended, failed ones included.", cellLabels, nil),
		errs:     prometheus.NewDesc(Errors, "Failed operations, by error class.", append(cellLabels[:3:3], LabelClass), nil),
		sched:    prometheus.NewDesc(Scheduled, "Operations an open loop's schedule made due in the measured window (its rate is the target rate).", cellLabels, nil),
		dropped:  prometheus.NewDesc(Dropped, "Operations an open loop made due that never started; added when the cell ends (live, see "+Behind+").", cellLabels, nil),
		behind:   prometheus.NewDesc(Behind, "Open-loop operations due and not started yet, at the last interval's end.", cellLabels, nil),
		inflight: prometheus.NewDesc(InFlight, "Operations started and not yet ended, at the last interval's end.", cellLabels, nil),
		workers:  prometheus.NewDesc(Workers, "Workers running, at the last interval's end.", cellLabels, nil),
		running:  prometheus.NewDesc(Running, "1 while the cell runs, 0 once it ended.", cellLabels, nil),
		latency:  prometheus.NewDesc(Latency, "Operation latency, from the intended start (latency=\"corrected\") or from the send (latency=\"uncorrected\").", append(cellLabels[:3:3], LabelMeasure), nil),
	}
)

// Exporter holds the metrics of every cell of a run; it is a
// prometheus.Collector. It is safe for concurrent use.
type Exporter struct {
	mu    sync.Mutex
	cells []*Cell
	reg   *prometheus.Registry
}

// New returns an Exporter with no cell, registered in a registry of its
// own, together with the Go runtime's and the process's collectors.
func New() *Exporter {
	x := &Exporter{reg: prometheus.NewRegistry()}
	x.reg.MustRegister(x, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return x
}

// Handler serves the metrics (the exposition format the scraper asks
// for: text, or protobuf with native histograms).
func (x *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(x.reg, promhttp.HandlerOpts{})
}

// Gatherer returns the registry, for tests and for other handlers.
func (x *Exporter) Gatherer() prometheus.Gatherer { return x.reg }

// Cell starts the metrics of a cell about to run and returns its
// monitor. A cell started again (the same three labels) continues its
// series: counters never go down.
func (x *Exporter) Cell(workload, backend, strategy string) *Cell {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.cells {
		if c.labels == [3]string{workload, backend, strategy} {
			c.start()
			return c
		}
	}
	c := &Cell{x: x, labels: [3]string{workload, backend, strategy}, errs: map[string]int64{}}
	c.lat[0], c.lat[1] = newHist(), newHist()
	c.start()
	x.cells = append(x.cells, c)
	return c
}

// Describe implements prometheus.Collector.
func (x *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descs.ops, descs.errs, descs.sched, descs.dropped, descs.behind, descs.inflight, descs.workers, descs.running, descs.latency} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (x *Exporter) Collect(ch chan<- prometheus.Metric) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.cells {
		c.collect(ch)
	}
}

// Cell is one cell's metrics: a bench.Monitor for each engine run of the
// cell, and End when it is over.
type Cell struct {
	x      *Exporter // its mu guards everything below
	labels [3]string

	ops, sched, dropped int64
	errs                map[string]int64
	behind, inFlight    int64
	workers             int
	running             bool
	lat                 [2]*hist // corrected, uncorrected
	created             time.Time
}

var _ bench.Monitor = (*Cell)(nil)

func (c *Cell) start() {
	if c.created.IsZero() {
		c.created = time.Now()
	}
	c.running = true
}

// Interval implements bench.Monitor.
func (c *Cell) Interval(iv bench.Interval) {
	// The histograms are walked outside the lock: they are the engine's
	// and only its merger writes them, which waits for this call.
	add := [2]*hist{newHist(), newHist()}
	for i, h := range []*hdrhistogram.Histogram{iv.Corrected, iv.Uncorrected} {
		if h != nil && h.TotalCount() > 0 {
			add[i].addHDR(h.Distribution())
		}
	}
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	c.ops += int64(add[0].count)
	for k, v := range iv.Errors {
		c.errs[k] += v
	}
	c.sched += iv.Scheduled
	c.behind, c.inFlight, c.workers = iv.Behind, iv.InFlight, iv.Workers
	c.lat[0].merge(add[0])
	c.lat[1].merge(add[1])
}

// End marks the cell over and adds the operations its open loop dropped
// (the engine's final figure; 0 for a closed loop or a cell that did not
// run). The gauges go to 0.
func (c *Cell) End(dropped int64) {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	c.dropped += max(dropped, 0)
	c.running = false
	c.behind, c.inFlight, c.workers = 0, 0, 0
}

// collect sends the cell's metrics; the Exporter's lock is held.
func (c *Cell) collect(ch chan<- prometheus.Metric) {
	l := c.labels[:]
	counter := func(d *prometheus.Desc, v int64, extra ...string) {
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(d, prometheus.CounterValue, float64(v), c.created, append(l[:3:3], extra...)...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter(descs.ops, c.ops)
	classes := make([]string, 0, len(c.errs))
	for k := range c.errs {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	for _, k := range classes {
		counter(descs.errs, c.errs[k], k)
	}
	counter(descs.sched, c.sched)
	counter(descs.dropped, c.dropped)
	gauge(descs.behind, float64(c.behind))
	gauge(descs.inflight, float64(c.inFlight))
	gauge(descs.workers, float64(c.workers))
	running := 0.0
	if c.running {
		running = 1
	}
	gauge(descs.running, running)
	for i, measure := range []string{MeasureCorrected, MeasureUncorrected} {
		if m, err := c.lat[i].metric(descs.latency, c.created, append(l[:3:3], measure)...); err == nil {
			ch <- m
		} else {
			ch <- prometheus.NewInvalidMetric(descs.latency, err)
		}
	}
}

// hist is a cumulative latency histogram in Prometheus's two forms.
type hist struct {
	count   uint64
	sum     float64 // seconds
	classic []uint64
	native  map[int]int64
}

func newHist() *hist {
	return &hist{classic: make([]uint64, len(ClassicBuckets)), native: map[int]int64{}}
}

// addHDR adds the bars of an HDR histogram in microseconds; each bar
// counts at its highest equivalent value, as HDR's percentiles do.
func (h *hist) addHDR(bars []hdrhistogram.Bar) {
	for _, b := range bars {
		if b.Count <= 0 {
			continue
		}
		v := float64(b.To) / 1e6
		n := uint64(b.Count)
		h.count += n
		h.sum += v * float64(n)
		if i := sort.SearchFloat64s(ClassicBuckets, v); i < len(ClassicBuckets) {
			h.classic[i] += n
		}
		h.native[nativeIndex(v)] += int64(n)
	}
}

// merge adds o to h.
func (h *hist) merge(o *hist) {
	h.count += o.count
	h.sum += o.sum
	for i, n := range o.classic {
		h.classic[i] += n
	}
	for k, n := range o.native {
		h.native[k] += n
	}
}

// nativeIndex returns the native bucket of v > 0 at NativeSchema: bucket
// i holds (2^((i-1)/8), 2^(i/8)].
func nativeIndex(v float64) int {
	return int(math.Ceil(math.Log2(v) * (1 << NativeSchema)))
}

// metric returns h as one histogram metric with both classic and native
// buckets.
func (h *hist) metric(d *prometheus.Desc, created time.Time, labels ...string) (prometheus.Metric, error) {
	native := make(map[int]int64, len(h.native))
	for k, v := range h.native {
		native[k] = v
	}
	m, err := prometheus.NewConstNativeHistogram(d, h.count, h.sum, native, nil, 0, NativeSchema, prometheus.DefNativeHistogramZeroThreshold, created, labels...)
	if err != nil {
		return nil, err
	}
	buckets := make([]*dto.Bucket, len(ClassicBuckets))
	var cum uint64
	for i, ub := range ClassicBuckets {
		cum += h.classic[i]
		buckets[i] = &dto.Bucket{CumulativeCount: proto(cum), UpperBound: proto(ub)}
	}
	return withClassic{Metric: m, buckets: buckets}, nil
}

func proto[T any](v T) *T { return &v }

// withClassic adds classic buckets to a native histogram, as a
// prometheus.Histogram with both kinds of buckets writes them.
type withClassic struct {
	prometheus.Metric
	buckets []*dto.Bucket
}

// Write implements prometheus.Metric.
func (m withClassic) Write(out *dto.Metric) error {
	if err := m.Metric.Write(out); err != nil {
		return err
	}
	out.Histogram.Bucket = m.buckets
	return nil
}
