package main

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
)

const reportSynopsis = `paybench report FILE [flags]

Renders a saved result (FILE, or - for standard input) without touching
Redis: --format text (the run's table), matrix (the suite's summary),
markdown (a pull-request comment), html (one self-contained page with
plots), junit (a test case per invariant), benchfmt (benchstat's input),
hgrm (HdrHistogram percentiles; --cell and --histogram pick one to plot)
or json. --gate judges gates on the saved result (exit 1 when one fails).`

func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var format, out, cells, hist string
	var gateExprs []string
	fs := newFlagSet("report")
	fs.StringVarP(&format, "format", "f", reports.FormatText, "output format: "+strings.Join(reports.Formats, ", "))
	fs.StringVarP(&out, "output", "o", "", "write to this file instead of standard output")
	fs.StringVar(&cells, "cell", "", "hgrm: only cells matching scenario[/backend[/strategy]] (globs)")
	fs.StringVar(&hist, "histogram", "", "hgrm: only this histogram: corrected, uncorrected or step:NAME")
	fs.StringArrayVar(&gateExprs, "gate", nil, "judge these gates on the result, e.g. 'p99<5ms,throughput>20000' (exit 1 when one fails)")
	if err := parse(fs, args, stdout, reportSynopsis); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("report needs one result file (or -), got %d arguments", fs.NArg())
	}
	if !contains(reports.Formats, format) {
		return usageErrorf("--format %q: one of %s", format, strings.Join(reports.Formats, ", "))
	}
	if (cells != "" || hist != "") && format != reports.FormatHgrm {
		return usageErrorf("--cell and --histogram select hgrm output; add --format hgrm")
	}
	gates, err := parseGateFlags(gateExprs)
	if err != nil {
		return err
	}
	doc, err := readResult(fs.Arg(0))
	if err != nil {
		return err
	}
	var gateErr error
	if len(gates) > 0 {
		gateErr = judgeGates(doc, gates, stderr)
	}
	render := func(w io.Writer) error {
		if format == reports.FormatHgrm {
			return reports.Hgrm(w, doc, reports.HgrmOptions{Cells: cells, Histogram: hist})
		}
		return reports.Render(w, doc, format)
	}
	if out != "" {
		if err := reports.WriteFileFunc(out, render); err != nil {
			return err
		}
	} else if err := render(stdout); err != nil {
		return err
	}
	return gateErr
}

// readResult reads a result document from a file, or from standard input
// for "-"; a file that cannot be read, is not a result (reports.ErrNotJSON,
// ErrNotResult) or is of a newer schema (ErrNewerSchema) is a usage error.
func readResult(path string) (*result.Document, error) {
	var doc *result.Document
	var err error
	if path == "-" {
		doc, err = reports.ReadJSON(os.Stdin, "standard input")
	} else {
		doc, err = reports.ReadJSONFile(path)
	}
	if err != nil {
		return nil, usageErrorf("%w", err)
	}
	return doc, nil
}

// readCells reads a result document as readResult does, and refuses one
// without cells (a usage error): compare and merge would have nothing to
// work on.
func readCells(path string) (*result.Document, error) {
	doc, err := readResult(path)
	if err != nil {
		return nil, err
	}
	name := path
	if path == "-" {
		name = "standard input"
	}
	if err := reports.RequireCells(doc, name); err != nil {
		return nil, usageErrorf("%w", err)
	}
	return doc, nil
}

// percentFlag parses a relative threshold flag ("10%", "0.1", "none").
func percentFlag(name, value string) (float64, error) {
	v, err := reports.ParsePercent(value)
	if err != nil {
		return 0, usageErrorf("--%s: %w", name, err)
	}
	return v, nil
}
