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
