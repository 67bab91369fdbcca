package reports

import (
	"fmt"
	"sort"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

// ClusterNotes returns, for a cell run on a Redis Cluster, one line on how
// its work spread over the masters: the commands each master processed
// during the cell (Cell.ClusterCommands) and, when the cell has stock
// keys, how many each master holds (Cell.ClusterStockKeys), masters by
// address, such as
//
//	cluster: commands per master 127.0.0.1:7000 131.2k · 127.0.0.1:7001 138.0k (total 269.2k); stock keys per master 127.0.0.1:7000 3 · 127.0.0.1:7001 5
//
// None on one server.
func ClusterNotes(c result.Cell) []string {
	if len(c.ClusterCommands) == 0 && len(c.ClusterStockKeys) == 0 {
		return nil
	}
	var parts []string
	if len(c.ClusterCommands) > 0 {
		var total int64
		for _, n := range c.ClusterCommands {
			total += n
		}
		parts = append(parts, fmt.Sprintf("commands per master %s (total %s)", perMaster(c.ClusterCommands), FormatCount(float64(total))))
	}
	if len(c.ClusterStockKeys) > 0 {
		parts = append(parts, "stock keys per master "+perMaster(c.ClusterStockKeys))
	}
	return []string{"cluster: " + strings.Join(parts, "; ")}
}

// perMaster renders counts by master address, sorted by address.
func perMaster(m map[string]int64) string {
	addrs := make([]string, 0, len(m))
	for a := range m {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a + " " + FormatCount(float64(m[a]))
	}
	return strings.Join(out, " · ")
}
