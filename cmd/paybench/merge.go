package main

import (
	"context"
	"fmt"
	"io"

	"github.com/paybench/paybench/reports"
)

const mergeSynopsis = `paybench merge A.json B.json ... [flags] > all.json

Combines the results of one run taken by several load generators against
one Redis (started at the same time, with the same command line): the
histograms add exactly and the latency summaries are recomputed from
them, operations, errors and throughputs add, and invariants are judged
again on the combined figures where their cells say how (else each holds
only if it held everywhere, marked "kept"). Writes the merged JSON result
to standard output, or to --output.`

func cmdMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var out string
	var gateExprs []string
	fs := newFlagSet("merge")
	fs.StringVarP(&out, "output", "o", "", "write the merged result to this file instead of standard output")
	fs.StringArrayVar(&gateExprs, "gate", nil, "judge these gates on the merged result, e.g. 'p99<5ms,throughput>20000' (exit 1 when one fails)")
	if err := parse(fs, args, stdout, mergeSynopsis); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usageErrorf("merge needs at least one result file")
	}
	gates, err := parseGateFlags(gateExprs)
	if err != nil {
		return err
	}
	var inputs []reports.MergeInput
	for _, path := range fs.Args() {
		doc, err := readCells(path)
		if err != nil {
			return err
		}
		inputs = append(inputs, reports.MergeInput{Name: path, Doc: doc})
	}
	merged, warnings, err := reports.Merge(inputs)
	if err != nil {
		return withCode(exitUsage, err)
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, "paybench: warning: "+w)
	}
	gateErr := judgeGates(merged, gates, stderr)
	if out != "" {
		if err := reports.WriteJSONFile(out, merged); err != nil {
			return err
		}
	} else if err := reports.WriteJSON(stdout, merged); err != nil {
		return err
	}
	return gateErr
}
