package reports

import (
	"fmt"
	"sort"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/reports/result"
)

// DecodeHistogram decodes one of hdrhistogram-go's compressed encodings, as
// Cell.Histograms holds them.
func DecodeHistogram(enc string) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(enc))
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	return h, nil
}

// EncodeHistogram returns h's compressed V2 encoding (base64 text), or ""
// for an empty histogram, as Cell.Histograms holds it.
func EncodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	if h == nil || h.TotalCount() == 0 {
		return "", nil
	}
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	return string(b), nil
}

// CellHistogram decodes the cell's histogram under key ("corrected",
// "uncorrected" or "step:NAME"); nil and no error when the cell has none.
func CellHistogram(c *result.Cell, key string) (*hdrhistogram.Histogram, error) {
	enc, ok := c.Histograms[key]
	if !ok || enc == "" {
		return nil, nil
	}
	h, err := DecodeHistogram(enc)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", c.Key(), key, err)
	}
	return h, nil
}

// HistogramKeys returns the keys of c's histograms in display order:
// corrected, uncorrected, then the steps by name.
func HistogramKeys(c *result.Cell) []string {
	var keys, steps []string
	for _, k := range []string{result.HistogramCorrected, result.HistogramUncorrected} {
		if c.Histograms[k] != "" {
			keys = append(keys, k)
		}
	}
	for k, v := range c.Histograms {
		if strings.HasPrefix(k, result.HistogramStepPrefix) && v != "" {
			steps = append(steps, k)
		}
	}
	sort.Strings(steps)
	return append(keys, steps...)
}
