package result

import (
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Summarize returns h's percentiles in microseconds (the unit the engine
// records in), as every cell's latency summary holds them. A nil or empty
// histogram gives the zero Summary.
func Summarize(h *hdrhistogram.Histogram) Summary {
	if h == nil || h.TotalCount() == 0 {
		return Summary{}
	}
	v := h.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9})
	return Summary{
		Count: h.TotalCount(),
		P50:   v[0],
		P90:   v[1],
		P99:   v[2],
		P999:  v[3],
		Max:   h.Max(),
		Mean:  h.Mean(),
	}
}
