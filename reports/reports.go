// Package reports renders a paybench result for people and for machines.
// Renderers read only the result document; nothing here talks to Redis.
package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

// WriteJSON writes doc as indented JSON.
func WriteJSON(w io.Writer, doc *result.Document) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return nil
}

// WriteJSONFile writes doc to path atomically (a temporary file renamed into
// place), so an interrupted run never leaves half a document.
func WriteJSONFile(path string, doc *result.Document) error {
	return writeFileAtomic(path, func(w io.Writer) error { return WriteJSON(w, doc) })
}

// Errors of ReadJSON and ReadJSONFile (besides the reader's own), to test
// with errors.Is. Each names its input: "x.json is not a paybench result
// (no "kind" or "tool" field)".
var (
	// ErrNotJSON: the input does not parse as JSON.
	ErrNotJSON = errors.New("not JSON")
	// ErrNotResult: the input is JSON but not a paybench result document:
	// not an object, or a field every document has is missing or wrong.
	ErrNotResult = errors.New("not a paybench result")
	// ErrNewerSchema: the document was written by a newer paybench, whose
	// schema this build cannot read.
	ErrNewerSchema = errors.New("written by a newer paybench")
	// ErrNoCells is returned by RequireCells for a document without cells.
	ErrNoCells = errors.New("has no cells")
)

// Kinds of result document: the commands that write them.
var documentKinds = []string{"run", "load", "suite"}

// ReadJSON reads a result document from r and checks it (see
// ReadJSONFile); name says where it came from, in errors.
func ReadJSON(r io.Reader, name string) (*result.Document, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return decodeJSON(b, name)
}

// ReadJSONFile reads a result document and checks that it is one this
// build can read: JSON (else ErrNotJSON), an object with "schema", "kind"
// (run, load or suite), "tool" and "started" (else ErrNotResult), a schema
// no newer than result.SchemaVersion (else ErrNewerSchema), and cells that
// each name their scenario or operation, backend, strategy and verdict
// (else ErrNotResult, naming the cell by its index). A document without
// cells is valid; RequireCells refuses one. Every error names the file and
// is one line.
func ReadJSONFile(path string) (*result.Document, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b, path)
}

// decodeJSON decodes and checks a result document (see ReadJSONFile).
// name says where the document came from; every error starts with it.
func decodeJSON(b []byte, name string) (*result.Document, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s is %w: it is empty", name, ErrNotJSON)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s is %w: line %d: %w", name, ErrNotJSON, lineOf(b, se.Offset), err)
		}
		return nil, fmt.Errorf("%s is %w (a JSON %s, not an object)", name, ErrNotResult, jsonType(b))
	}
	if fields == nil { // the JSON literal null
		return nil, fmt.Errorf("%s is %w (JSON null, not an object)", name, ErrNotResult)
	}
	// A newer paybench may have changed any other field: say so first.
	var schema json.Number
	schemaErr := json.Unmarshal(fields["schema"], &schema)
	v, intErr := schema.Int64()
	if _, isTool := fields["tool"]; schemaErr == nil && intErr == nil && v > result.SchemaVersion && isTool {
		return nil, fmt.Errorf("%s was %w (schema %d, this build reads %d): upgrade paybench to read it", name, ErrNewerSchema, v, result.SchemaVersion)
	}
	var missing []string
	for _, f := range []string{"schema", "kind", "tool", "started"} {
		if v, ok := fields[f]; !ok || string(v) == "null" {
			missing = append(missing, strconv.Quote(f))
		}
	}
	switch {
	case len(missing) > 0:
		return nil, fmt.Errorf("%s is %w (no %s field)", name, ErrNotResult, orList(missing))
	case schemaErr != nil:
		return nil, fmt.Errorf("%s is %w (\"schema\" is %s, not a number)", name, ErrNotResult, clip(fields["schema"]))
	case intErr != nil || v < 1 || v > result.SchemaVersion:
		return nil, fmt.Errorf("%s is %w (\"schema\" is %s; this build reads %d)", name, ErrNotResult, schema, result.SchemaVersion)
	}
	var doc result.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s is %w: %w", name, ErrNotResult, err)
	}
	if !slices.Contains(documentKinds, doc.Kind) {
		return nil, fmt.Errorf("%s is %w (\"kind\" is %q, want %s)", name, ErrNotResult, doc.Kind, orList(documentKinds))
	}
	for i := range doc.Cells {
		if err := checkCell(&doc.Cells[i]); err != nil {
			return nil, fmt.Errorf("%s is %w: cells[%d]%s %w", name, ErrNotResult, i, cellHint(&doc.Cells[i]), err)
		}
	}
	return &doc, nil
}

// RequireCells returns an error wrapping ErrNoCells when doc has no cells:
// there is nothing to compare or merge. name says where doc came from.
func RequireCells(doc *result.Document, name string) error {
	if len(doc.Cells) > 0 {
		return nil
	}
	why := ""
	if doc.Interrupted {
		why = " (its run was interrupted before a cell finished)"
	}
	return fmt.Errorf("%s %w%s", name, ErrNoCells, why)
}

// checkCell checks that a cell names what ran and has a verdict.
func checkCell(c *result.Cell) error {
	var missing []string
	if c.Scenario == "" && c.Operation == "" {
		missing = append(missing, `"scenario" or "operation"`)
	}
	if c.Backend == "" {
		missing = append(missing, `"backend"`)
	}
	if c.Strategy == "" {
		missing = append(missing, `"strategy"`)
	}
	if c.Verdict == "" {
		missing = append(missing, `"verdict"`)
	}
	if len(missing) > 0 {
		return fmt.Errorf("has no %s", strings.Join(missing, ", no "))
	}
	return nil
}

// cellHint names a cell by what it has, " (oversell/goredis)", to help
// find it in the file.
func cellHint(c *result.Cell) string {
	var parts []string
	for _, p := range []string{c.Name(), c.Backend, c.Strategy} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "/") + ")"
}

// lineOf returns the line of b that byte offset off is on, from 1.
func lineOf(b []byte, off int64) int {
	off = min(max(off, 0), int64(len(b)))
	return bytes.Count(b[:off], []byte("\n")) + 1
}

// jsonType names the type of the valid JSON value b.
func jsonType(b []byte) string {
	switch bytes.TrimSpace(b)[0] {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// clip returns a JSON value for an error message, cut to a few characters.
func clip(v json.RawMessage) string {
	s := string(v)
	if len(s) > 20 {
		s = s[:20] + "…"
	}
	return s
}

// orList joins items as "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

func writeFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".paybench-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	// CreateTemp makes the file private; a report is as readable as any
	// file the user writes.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
