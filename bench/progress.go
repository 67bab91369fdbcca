package bench

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// ProgressLine renders Progress as one live line for a terminal: each
// update rewrites the line in place (carriage return and erase), and Done
// erases it. Use it only when w is a terminal; it is not safe for
// concurrent use, which the engine never does.
type ProgressLine struct {
	w     io.Writer
	label string
	used  bool
}

// NewProgressLine returns a line that writes to w, each update starting
// with label (the cell being measured, say).
func NewProgressLine(w io.Writer, label string) *ProgressLine {
	return &ProgressLine{w: w, label: label}
}

// Update rewrites the line with p: elapsed time, operations, the rate and
// p99 of the last interval, errors, workers and, for an open loop running
// behind, the operations due but not started.
func (l *ProgressLine) Update(p Progress) {
	l.used = true
	if p.Warmup {
		fmt.Fprintf(l.w, "\r\x1b[2K%s  warm-up %s  workers %d", l.label, p.Elapsed.Truncate(time.Second), p.Workers)
		return
	}
	line := fmt.Sprintf("\r\x1b[2K%s  %s  ops %s  now %s/s  p99 %s  errors %s  workers %d",
		l.label, p.Elapsed.Truncate(100*time.Millisecond), groupDigits(p.Ops), groupDigits(int64(p.Rate)),
		formatMicros(p.Last.P99), groupDigits(p.Errors), p.Workers)
	if p.Behind > 0 {
		line += "  behind " + groupDigits(p.Behind)
	}
	io.WriteString(l.w, line)
}

// Done erases the line, if anything was written.
func (l *ProgressLine) Done() {
	if l.used {
		io.WriteString(l.w, "\r\x1b[2K")
		l.used = false
	}
}

// formatMicros renders microseconds with a readable unit.
func formatMicros(us int64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return strconv.FormatInt(us, 10) + "µs"
	case us < 1_000_000:
		return strconv.FormatFloat(float64(us)/1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(float64(us)/1e6, 'f', 2, 64) + "s"
}

// groupDigits renders n with thousands separators: 1234567 is "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
