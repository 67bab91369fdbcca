package main

import (
	"context"
	"fmt"
	"io"

	"github.com/paybench/paybench/reports"
)

const compareSynopsis = `paybench compare BASE NEW [flags]

Compares the result NEW with the baseline BASE cell by cell (scenario or
operation, backend, strategy): throughput, p50, p99 and max with their
change, and the verdict change. Exits 1, naming each cell, when a cell of
NEW broke an invariant it should hold or could not run, when a cell of
BASE is missing from NEW, when a threshold below is crossed, or when a
--gate fails on NEW. Thresholds are relative to BASE: 10% or 0.1; none
turns one off.`

// Default thresholds of compare: wide enough for a noisy shared runner.
const (
	defaultMaxP99Increase    = "25%"
	defaultMaxThroughputDrop = "20%"
)

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var p99, tput, errRate, format, mdPath, perfCells string
	var gateExprs []string
	fs := newFlagSet("compare")
	fs.StringVar(&p99, "max-p99-increase", defaultMaxP99Increase, "fail a cell whose p99 grew by more than this")
	fs.StringVar(&tput, "max-throughput-drop", defaultMaxThroughputDrop, "fail a cell whose throughput fell by more than this")
	fs.StringVar(&errRate, "max-error-rate", "none", "fail a cell of NEW whose failed operations exceed this share of its operations (1% or 0.01)")
	fs.StringArrayVar(&gateExprs, "gate", nil, "absolute gates on NEW, e.g. 'p99<5ms,throughput>20000' (repeatable)")
	fs.StringVar(&perfCells, "perf-cells", "", "apply the three thresholds only to these cells, comma-separated scenario-or-operation[/backend[/strategy]] globs, e.g. '*.*' for the loads (default all)")
	fs.StringVarP(&format, "format", "f", "text", "output: text or markdown")
	fs.StringVar(&mdPath, "markdown", "", "also write the comparison as Markdown to this file")
	if err := parse(fs, args, stdout, compareSynopsis+"\n\nGates:\n"+reports.GateGrammar); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErrorf("compare needs two result files, BASE and NEW; got %d arguments", fs.NArg())
	}
	if format != "text" && format != "markdown" {
		return usageErrorf("--format %q: text or markdown", format)
	}
	var opt reports.CompareOptions
	var err error
	if opt.MaxP99Increase, err = percentFlag("max-p99-increase", p99); err != nil {
		return err
	}
	if opt.MaxThroughputDrop, err = percentFlag("max-throughput-drop", tput); err != nil {
		return err
	}
	if opt.MaxErrorRate, err = percentFlag("max-error-rate", errRate); err != nil {
		return err
	}
	if opt.Gates, err = parseGateFlags(gateExprs); err != nil {
		return err
	}
	opt.PerfCells = splitList(perfCells)
	if err := reports.ValidateCellSelectors(opt.PerfCells); err != nil {
		return usageErrorf("--perf-cells: %w", err)
	}
	base, err := readCells(fs.Arg(0))
	if err != nil {
		return err
	}
	newDoc, err := readCells(fs.Arg(1))
	if err != nil {
		return err
	}
	cmp := reports.Compare(base, newDoc, opt)
	if format == "markdown" {
		err = cmp.WriteMarkdown(stdout)
	} else {
		err = cmp.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if mdPath != "" {
		if err := reports.WriteFileFunc(mdPath, cmp.WriteMarkdown); err != nil {
			return err
		}
	}
	if cmp.Failed() {
		n := len(cmp.Failures())
		return withCode(exitFail, fmt.Errorf("%d comparison failures: first %s", n, cmp.Failures()[0]))
	}
	return nil
}
