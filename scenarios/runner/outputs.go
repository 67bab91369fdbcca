package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/reports/result"
)

// checkOutputs makes sure every output can be written before any work is
// done: its directory exists and takes a new file (the outputs are written
// atomically, through a file beside the target), and the target is not a
// directory. A problem is a usage error.
func checkOutputs(outs []Output) error {
	seen := map[string]string{}
	for _, o := range outs {
		if prev, dup := seen[filepath.Clean(o.Path)]; dup {
			return errext.Errorf(errext.Usage, "--%s and --%s both write %s", prev, o.Format, o.Path)
		}
		seen[filepath.Clean(o.Path)] = o.Format
		if fi, err := os.Stat(o.Path); err == nil && fi.IsDir() {
			return errext.Errorf(errext.Usage, "--%s %s: is a directory", o.Format, o.Path)
		}
		dir := filepath.Dir(o.Path)
		f, err := os.CreateTemp(dir, ".paybench-check-*")
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return errext.Errorf(errext.Usage, "--%s %s: cannot write in %s: %v", o.Format, o.Path, dir, err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil
}

// writeOutputs writes every output, each atomically. It writes them all
// even when one fails, and returns the errors joined.
//
// Next to an HTML report go porcupine's visualizations of the histories
// that are not linearizable (reports.WriteHistoryPages), written first so
// that every output names them.
func writeOutputs(doc *result.Document, outs []Output) error {
	var errs []error
	for _, o := range outs {
		if o.Format == reports.FormatHTML {
			if err := reports.WriteHistoryPages(o.Path, doc); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", o.Format, err))
			}
		}
	}
	for _, o := range outs {
		if err := reports.WriteFile(o.Path, doc, o.Format); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", o.Format, err))
		}
	}
	return errors.Join(errs...)
}

// judgeGates judges the gates on the document's cells and records every
// outcome in it; it returns a Fail error when any failed.
func judgeGates(doc *result.Document, gates []reports.Gate) error {
	if len(gates) == 0 {
		return nil
	}
	doc.Gates = reports.JudgeGates(doc, gates)
	if failed := reports.FailedGates(doc.Gates); len(failed) > 0 {
		return errext.Errorf(errext.Fail, "%d of %d gate checks failed", len(failed), len(doc.Gates))
	}
	return nil
}
