// Package reports renders a paybench result for people and for machines.
// Renderers read only the result document; nothing here talks to Redis.
package reports

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

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

// ReadJSONFile reads a result document and checks its schema version.
func ReadJSONFile(path string) (*result.Document, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc result.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: not a paybench result: %w", path, err)
	}
	if doc.Schema != result.SchemaVersion {
		return nil, fmt.Errorf("%s: schema version %d, this paybench reads %d", path, doc.Schema, result.SchemaVersion)
	}
	return &doc, nil
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
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
