package reports

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/paybench/paybench/reports/result"
)

// Cell parameters of a sharded load (`load --shard I/N`).
const (
	paramShard     = "shard"
	paramShards    = "shards"
	paramShardKeys = "shard_keys"
	paramShardReqs = "shard_requests"
)

// checkShards checks the shards of one cell's inputs (`load --shard I/N`):
// every input ran a shard of the same N, each shard once. A mix of shards
// and whole loads, different N or a shard given twice is an error (the sum
// would not be the load asked for); shards missing is a warning (the sum is
// part of it).
func checkShards(key string, cells []*result.Cell, from []string) ([]string, error) {
	var n int
	seen := map[int]string{}
	sharded := 0
	for i, c := range cells {
		spec, ok := c.Params[paramShard]
		if !ok {
			continue
		}
		sharded++
		is, ns, _ := strings.Cut(spec, "/")
		idx, err1 := strconv.Atoi(is)
		cnt, err2 := strconv.Atoi(ns)
		if err1 != nil || err2 != nil || cnt < 1 || idx < 0 || idx >= cnt {
			return nil, fmt.Errorf("%w: %s: %s has a bad shard %q", ErrMerge, key, from[i], spec)
		}
		if n == 0 {
			n = cnt
		} else if cnt != n {
			return nil, fmt.Errorf("%w: %s: %s ran shard %s, another input a shard of %d: shards of different splits do not add up to one load", ErrMerge, key, from[i], spec, n)
		}
		if prev, dup := seen[idx]; dup {
			return nil, fmt.Errorf("%w: %s: shard %s is in both %s and %s: the same part of the load twice", ErrMerge, key, spec, prev, from[i])
		}
		seen[idx] = from[i]
	}
	if sharded == 0 {
		return nil, nil
	}
	if sharded < len(cells) {
		var whole []string
		for i, c := range cells {
			if _, ok := c.Params[paramShard]; !ok {
				whole = append(whole, from[i])
			}
		}
		return nil, fmt.Errorf("%w: %s: %s ran the whole load, the other inputs shards of it", ErrMerge, key, strings.Join(whole, ", "))
	}
	var missing []string
	for i := range n {
		if _, ok := seen[i]; !ok {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		}
	}
	if len(missing) > 0 {
		return []string{fmt.Sprintf("%s: shards %s are missing: the merged figures are %d of %d parts of the load", key, strings.Join(missing, ", "), n-len(missing), n)}, nil
	}
	return nil, nil
}

// shardParams returns the merged cell's parameters: the first input's,
// with its shard replaced by the count of shards combined.
func shardParams(params map[string]string, cells []*result.Cell) map[string]string {
	if _, ok := params[paramShard]; !ok {
		return params
	}
	out := maps.Clone(params)
	_, n, _ := strings.Cut(out[paramShard], "/")
	delete(out, paramShard)
	delete(out, paramShardKeys)
	delete(out, paramShardReqs)
	out[paramShards] = n
	return out
}

// mergeStages adds the cells' stages, stage by stage: counts and rates add,
// latency is recomputed from the summed histograms. Inputs with different
// stages are not combined (a warning says so).
func mergeStages(cells []*result.Cell) ([]result.Stage, []string, error) {
	n := len(cells[0].Stages)
	for _, c := range cells[1:] {
		if len(c.Stages) != n {
			return nil, []string{"the inputs have different stages: the merged cell has none"}, nil
		}
	}
	if n == 0 {
		return nil, nil, nil
	}
	out := make([]result.Stage, n)
	for i := range n {
		s := result.Stage{Start: cells[0].Stages[i].Start, End: cells[0].Stages[i].End}
		hists := map[string]*hdrhistogram.Histogram{}
		for _, c := range cells {
			in := c.Stages[i]
			s.End = max(s.End, in.End)
			s.FromRate += in.FromRate
			s.ToRate += in.ToRate
			s.TargetRate += in.TargetRate
			s.Due += in.Due
			s.Dropped += in.Dropped
			s.Ops += in.Ops
			s.ThroughputOps += in.ThroughputOps
			for k, v := range in.Errors {
				if s.Errors == nil {
					s.Errors = map[string]int64{}
				}
				s.Errors[k] += v
			}
			for _, k := range slices.Sorted(maps.Keys(in.Histograms)) {
				h, err := DecodeHistogram(in.Histograms[k])
				if err != nil {
					return nil, nil, fmt.Errorf("stage %d %s: %w", i+1, k, err)
				}
				if hists[k] == nil {
					hists[k] = h
				} else if dropped := hists[k].Merge(h); dropped > 0 {
					return nil, nil, fmt.Errorf("%w: stage %d histogram %s: %d values out of range", ErrMerge, i+1, k, dropped)
				}
			}
		}
		if len(hists) > 0 {
			s.Histograms = map[string]string{}
			for k, h := range hists {
				enc, err := EncodeHistogram(h)
				if err != nil {
					return nil, nil, err
				}
				s.Histograms[k] = enc
			}
			s.Latency = result.Latency{Corrected: result.Summarize(hists[result.HistogramCorrected]), Uncorrected: result.Summarize(hists[result.HistogramUncorrected])}
		}
		out[i] = s
	}
	return out, nil, nil
}
