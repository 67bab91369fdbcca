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

// ReadJSON reads a result document from r and checks its schema version;
// name says where it came from, in errors.
func ReadJSON(r io.Reader, name string) (*result.Document, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return decodeJSON(b, name)
}

// ReadJSONFile reads a result document and checks its schema version.
func ReadJSONFile(path string) (*result.Document, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b, path)
}

func decodeJSON(b []byte, path string) (*result.Document, error) {
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
