package reports

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

// Formats a result renders to, for `paybench report --format`.
const (
	FormatText     = "text"
	FormatMatrix   = "matrix"
	FormatMarkdown = "markdown"
	FormatHTML     = "html"
	FormatJUnit    = "junit"
	FormatBenchFmt = "benchfmt"
	FormatHgrm     = "hgrm"
	FormatJSON     = "json"
)

// Formats lists the formats Render knows.
var Formats = []string{FormatText, FormatMatrix, FormatMarkdown, FormatHTML, FormatJUnit, FormatBenchFmt, FormatHgrm, FormatJSON}

// ErrUnknownFormat is returned by Render for a format it does not know.
var ErrUnknownFormat = errors.New("unknown format")

// Render writes doc in the named format. hgrm writes every histogram of
// every cell; call Hgrm to select some.
func Render(w io.Writer, doc *result.Document, format string) error {
	switch format {
	case FormatText:
		return Text(w, doc)
	case FormatMatrix:
		return WriteMatrix(w, doc)
	case FormatMarkdown:
		return Markdown(w, doc)
	case FormatHTML:
		return HTML(w, doc)
	case FormatJUnit:
		return JUnit(w, doc)
	case FormatBenchFmt:
		return BenchFmt(w, doc)
	case FormatHgrm:
		return Hgrm(w, doc, HgrmOptions{})
	case FormatJSON:
		return WriteJSON(w, doc)
	}
	return fmt.Errorf("%w %q (known: %s)", ErrUnknownFormat, format, strings.Join(Formats, ", "))
}

// WriteFile renders doc in format to path atomically: a temporary file in
// the same folder renamed into place.
func WriteFile(path string, doc *result.Document, format string) error {
	return writeFileAtomic(path, func(w io.Writer) error { return Render(w, doc, format) })
}

// WriteFileFunc writes path atomically with write: a temporary file in
// the same folder renamed into place.
func WriteFileFunc(path string, write func(io.Writer) error) error {
	return writeFileAtomic(path, write)
}
