package reports

import (
	"fmt"
	"maps"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

// mergeExtras carries into a merged cell what each generator observed
// beside its figures: the faults it applied, the failures it settled,
// which masters of a Redis Cluster held and served its keys, and its
// checked history.
func mergeExtras(out *result.Cell, cells []*result.Cell, from []string) {
	out.SeriesStart = cells[0].SeriesStart
	out.Faults = mergeFaults(cells, from)
	for _, c := range cells {
		out.Settled += c.Settled
		// Generators own disjoint keys: their keys per master add up.
		out.ClusterKeys = addCounts(out.ClusterKeys, c.ClusterKeys)
		out.ClusterStockKeys = addCounts(out.ClusterStockKeys, c.ClusterStockKeys)
		// Each generator counted every client's commands on a master over
		// about the same window: the largest count is the closest to the
		// master's own total (adding them would count each command once
		// per generator).
		out.ClusterCommands = maxCounts(out.ClusterCommands, c.ClusterCommands)
	}
	out.History = mergeHistories(cells, from)
}

// mergeFaults lists every generator's faults, each marked with the input
// it came from, with its times moved onto the merged cell's clock: the
// merged series is the first input's axis, so a fault at Start in input i
// sits at Start − SeriesStart(i) + SeriesStart(0).
func mergeFaults(cells []*result.Cell, from []string) []result.Fault {
	var out []result.Fault
	for i, c := range cells {
		shift := 0.0
		if c.SeriesStart > 0 && cells[0].SeriesStart > 0 {
			shift = cells[0].SeriesStart - c.SeriesStart
		}
		for _, f := range c.Faults {
			if f.Count > 0 { // one that never fired has no time
				f.Start += shift
				f.End += shift
			}
			if f.From == "" {
				f.From = from[i]
			}
			out = append(out, f)
		}
	}
	return out
}

func addCounts(dst, src map[string]int64) map[string]int64 {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]int64, len(src))
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func maxCounts(dst, src map[string]int64) map[string]int64 {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		return maps.Clone(src)
	}
	for k, v := range src {
		dst[k] = max(dst[k], v)
	}
	return dst
}

// mergeHistories combines the generators' checked histories. Generators
// own disjoint keys, so their histories are disjoint partitions of one
// history, and linearizability is local: the whole is linearizable when
// every part is, and not linearizable when any part is not (that part's
// witness is the merged one's, without its visualization file, which lies
// next to that generator's report). An undecided part leaves the whole
// unknown, and a generator without a checked history leaves the whole not
// checked. Nil when no generator recorded one.
func mergeHistories(cells []*result.Cell, from []string) *result.History {
	var out *result.History
	var missing, reasons []string
	var violation, undecided bool
	for i, c := range cells {
		h := c.History
		if h == nil {
			missing = append(missing, from[i])
			continue
		}
		if out == nil {
			out = &result.History{Model: h.Model}
		}
		out.Ops += h.Ops
		out.UnknownOutcomes += h.UnknownOutcomes
		out.Partitions += h.Partitions
		out.CheckSec = max(out.CheckSec, h.CheckSec) // generators check at once
		switch h.Result {
		case result.HistoryNotLinearizable:
			if !violation {
				violation = true
				out.Partition = fmt.Sprintf("%s (%s)", h.Partition, from[i])
				out.Witness, out.WitnessOps, out.WitnessSize = h.Witness, h.WitnessOps, h.WitnessSize
			}
		case result.HistoryLinearizable:
		case result.HistoryNotChecked:
			missing = append(missing, fmt.Sprintf("%s (%s)", from[i], orUnknown(h.Reason)))
		default:
			undecided = true
			reasons = append(reasons, fmt.Sprintf("%s: %s", from[i], orUnknown(h.Reason)))
		}
	}
	switch {
	case out == nil:
		return nil
	case violation:
		out.Result = result.HistoryNotLinearizable
	case len(missing) > 0:
		out.Result = result.HistoryNotChecked
		out.Reason = "not checked by " + strings.Join(missing, ", ")
	case undecided:
		out.Result = result.HistoryUnknown
		out.Reason = strings.Join(reasons, "; ")
	default:
		out.Result = result.HistoryLinearizable
	}
	return out
}
