package reports

import (
	"fmt"
	"io"
	"path"

	"github.com/paybench/paybench/reports/result"
)

// HgrmOptions selects what Hgrm writes.
type HgrmOptions struct {
	// Cells selects cells by their key, "scenario/backend/strategy", with a
	// glob per part ("" or "*": every cell). Missing parts match anything.
	Cells string
	// Histogram selects one histogram key: "corrected", "uncorrected" or
	// "step:NAME" ("": every histogram of the cell).
	Histogram string
}

// hgrmTicks is the number of percentile ticks per half distance, as
// HdrHistogram's own tools print them.
const hgrmTicks = 5

// Hgrm writes the percentile distribution of the selected histograms in
// HdrHistogram's .hgrm text (PercentilesPrint of the decoded histogram,
// values in milliseconds), which HdrHistogram's plotter reads. Each
// histogram is preceded by a "#" line naming it; to plot one, select one
// cell and one histogram.
func Hgrm(w io.Writer, doc *result.Document, opt HgrmOptions) error {
	pattern := "*/*/*"
	if opt.Cells != "" {
		pattern = cellPattern(opt.Cells)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("cell selector %q: %w", opt.Cells, err)
	}
	n := 0
	for i := range doc.Cells {
		c := &doc.Cells[i]
		if ok, _ := path.Match(pattern, c.Key()); !ok {
			continue
		}
		for _, key := range HistogramKeys(c) {
			if opt.Histogram != "" && key != opt.Histogram {
				continue
			}
			h, err := CellHistogram(c, key)
			if err != nil {
				return err
			}
			if n > 0 {
				if _, err := fmt.Fprintln(w); err != nil {
					return err
				}
			}
			n++
			if _, err := fmt.Fprintf(w, "# %s %s (values in ms)\n", c.Key(), key); err != nil {
				return err
			}
			if _, err := h.PercentilesPrint(w, hgrmTicks, 1000); err != nil {
				return fmt.Errorf("%s %s: %w", c.Key(), key, err)
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("no histogram matches cells %q, histogram %q", opt.Cells, opt.Histogram)
	}
	return nil
}
