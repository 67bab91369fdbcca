package main

import (
	"fmt"
	"io"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
)

// judgeGates judges gates on a saved document (report, merge), records
// the outcomes in it, prints each failure on w, and returns an exit-1
// error when any failed.
func judgeGates(doc *result.Document, gates []reports.Gate, w io.Writer) error {
	if len(gates) == 0 {
		return nil
	}
	doc.Gates = reports.JudgeGates(doc, gates)
	failed := reports.FailedGates(doc.Gates)
	for _, g := range failed {
		fmt.Fprintln(w, "gate "+reports.DescribeGate(g))
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "gates: all %d checks held\n", len(doc.Gates))
		return nil
	}
	return withCode(exitFail, fmt.Errorf("%d of %d gate checks failed", len(failed), len(doc.Gates)))
}

// parseGateFlags parses repeated --gate lists; a bad one is a usage error.
func parseGateFlags(exprs []string) ([]reports.Gate, error) {
	o := outputFlags{gateExprs: exprs}
	return o.gates()
}
