package bench

import (
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/reports/result"
)

// EncodeHistogram returns hdrhistogram-go's compressed V2 encoding (base64
// text), or "" for an empty histogram.
func EncodeHistogram(h *hdrhistogram.Histogram) string {
	if h == nil || h.TotalCount() == 0 {
		return ""
	}
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return string(b)
}

// Fill copies the run's measurements into c: operation and error counts,
// the first error message of each class, dropped operations, throughput,
// latency summaries, the per-interval series and where it starts
// (SeriesStart, in seconds), per-step latency and encoded histograms.
func (s *Stats) Fill(c *result.Cell) {
	c.Ops = s.Ops
	c.Dropped = s.Dropped
	c.ElapsedSec = s.Elapsed.Seconds()
	c.ThroughputOps = s.Throughput()
	if len(s.Errors) > 0 {
		c.Errors = map[string]int64{}
		for k, v := range s.Errors {
			c.Errors[k] = v
		}
	}
	if len(s.ErrorSamples) > 0 {
		c.ErrorSamples = map[string]string{}
		for k, v := range s.ErrorSamples {
			c.ErrorSamples[k] = v
		}
	}
	c.Latency = result.Latency{Corrected: result.Summarize(s.Corrected), Uncorrected: result.Summarize(s.Uncorrected)}
	c.Series = append([]result.Point(nil), s.Series...)
	c.SeriesStart = s.SeriesStart.Seconds()
	c.Histograms = map[string]string{}
	if e := EncodeHistogram(s.Corrected); e != "" {
		c.Histograms["corrected"] = e
	}
	if e := EncodeHistogram(s.Uncorrected); e != "" {
		c.Histograms["uncorrected"] = e
	}
	if len(s.Steps) > 0 {
		c.Steps = map[string]result.Latency{}
		for name, h := range s.Steps {
			sum := result.Summarize(h)
			c.Steps[name] = result.Latency{Corrected: sum, Uncorrected: sum}
			if e := EncodeHistogram(h); e != "" {
				c.Histograms["step:"+name] = e
			}
		}
	}
}

// FillStages copies the run's stages into c.Stages, each with its ramp
// from p, the stages' schedule, scaled by share (1, or 1/N for one of N
// shards): every rate of a cell is its own generator's part.
func (s *Stats) FillStages(c *result.Cell, p StagesPacer, share float64) {
	if len(s.Stages) == 0 {
		return
	}
	from := p.Start
	var ramps [][2]float64
	for _, st := range p.Stages {
		if st.Duration > 0 {
			ramps = append(ramps, [2]float64{from, st.Target})
		}
		from = st.Target
	}
	c.Stages = make([]result.Stage, len(s.Stages))
	for i, st := range s.Stages {
		out := result.Stage{
			Start:         st.Start.Seconds(),
			End:           st.End.Seconds(),
			Due:           st.Due,
			Dropped:       st.Dropped,
			Ops:           st.Ops,
			ThroughputOps: st.Throughput(),
			Latency:       result.Latency{Corrected: result.Summarize(st.Corrected), Uncorrected: result.Summarize(st.Uncorrected)},
			Histograms:    map[string]string{},
		}
		if i < len(ramps) {
			out.FromRate, out.ToRate = ramps[i][0]*share, ramps[i][1]*share
			out.TargetRate = (out.FromRate + out.ToRate) / 2
		}
		if len(st.Errors) > 0 {
			out.Errors = map[string]int64{}
			for k, v := range st.Errors {
				out.Errors[k] = v
			}
		}
		if e := EncodeHistogram(st.Corrected); e != "" {
			out.Histograms[result.HistogramCorrected] = e
		}
		if e := EncodeHistogram(st.Uncorrected); e != "" {
			out.Histograms[result.HistogramUncorrected] = e
		}
		c.Stages[i] = out
	}
}
