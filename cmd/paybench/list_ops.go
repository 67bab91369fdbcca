package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/paybench/paybench/scenarios"
)

// listOperations writes the `paybench load` operations for `paybench
// list`: each with its description and strategies (the default first).
func listOperations(w io.Writer) {
	fmt.Fprintln(w, "Operations (paybench load OPERATION):")
	for _, name := range scenarios.OperationNames() {
		op, err := scenarios.LookupOperation(name)
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "  %-16s %s\n", name, op.Description)
		fmt.Fprintf(w, "      strategies: %s (default %s)\n", strings.Join(op.Strategies, ", "), op.Strategies[0])
	}
}
