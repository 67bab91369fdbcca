package reports

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

// WriteHistoryPages writes, next to the HTML report at htmlPath, porcupine's
// visualization of every cell whose history is not linearizable
// (History.Page), as "<report>.history-<scenario>-<backend>-<strategy>.html",
// and records each file's name in its cell (History.Visualization), for
// the report to link. Cells without a page are left alone.
func WriteHistoryPages(htmlPath string, doc *result.Document) error {
	base := strings.TrimSuffix(filepath.Base(htmlPath), filepath.Ext(htmlPath))
	dir := filepath.Dir(htmlPath)
	for i := range doc.Cells {
		c := &doc.Cells[i]
		if c.History == nil || len(c.History.Page) == 0 {
			continue
		}
		name := fmt.Sprintf("%s.history-%s-%s-%s.html", base, safeName(c.Name()), safeName(c.Backend), safeName(c.Strategy))
		page := c.History.Page
		if err := writeFileAtomic(filepath.Join(dir, name), func(w io.Writer) error { _, err := w.Write(page); return err }); err != nil {
			return fmt.Errorf("write the history visualization of %s: %w", c.Key(), err)
		}
		c.History.Visualization = name
	}
	return nil
}

// safeName keeps letters, digits, '-' and '_' of s, replacing the rest
// with '_'.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}
