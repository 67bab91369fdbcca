package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/scenarios"
)

func cmdList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list")
	if err := parse(fs, args, stdout, "paybench list"); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Scenarios (paybench run SCENARIO):")
	for _, name := range scenarios.Names() {
		sc, _ := scenarios.New(name)
		fmt.Fprintf(stdout, "  %-16s %s\n", name, sc.Description())
		for _, st := range sc.Strategies() {
			fmt.Fprintf(stdout, "      %-14s expected to %-5s  %s\n", st.Name, st.Expect, st.Note)
		}
	}
	listOperations(stdout)
	fmt.Fprintf(stdout, "Backends: %s\n", strings.Join(impl.Backends(), ", "))
	return nil
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version")
	if err := parse(fs, args, stdout, "paybench version"); err != nil {
		return err
	}
	commit := bench.Commit()
	if commit == "" {
		commit = "unknown"
	}
	fmt.Fprintf(stdout, "paybench %s (commit %s, %s %s/%s)\n", bench.Version(), commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	mods := bench.ModuleVersions()
	names := make([]string, 0, len(mods))
	for m := range mods {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		fmt.Fprintf(stdout, "  %s %s\n", m, mods[m])
	}
	return nil
}
