package runner

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
)

// Defaults of FindMax.
const (
	DefaultFindMaxStep       = 10 * time.Second
	DefaultFindMaxStart      = 1000
	DefaultFindMaxLimit      = 10_000_000
	DefaultFindMaxFloor      = 1
	DefaultFindMaxPrecision  = 0.05
	DefaultFindMaxBudget     = 5 * time.Minute
	DefaultFindMaxMaxDropped = 0.01
	// maxSearchSteps bounds a search whatever its budget.
	maxSearchSteps = 64
	// minStepOps is the fewest operations a step may schedule: the
	// default floor of the rate is minStepOps per step.
	minStepOps = 20
)

// FindMax shapes a search for the highest open-loop rate that meets every
// gate: the rate doubles from Start while steps meet the gates (a rate
// fails only when two steps in a row at it fail), then
// bisects between the highest rate that met them and the lowest that did
// not, until the two are within Precision, Limit or Floor is reached, or
// Budget runs out. Each step is an open loop at a constant rate, Step long
// after StepWarmup, on the same connections; its gates are judged on its
// own figures, latency from the intended start (corrected for coordinated
// omission), and a step that dropped more than MaxDropped of its schedule
// did not meet its rate whatever its latency. Zero fields take the
// defaults above (StepWarmup: a sixth of Step).
type FindMax struct {
	Gates      []reports.Gate
	Step       time.Duration
	StepWarmup time.Duration
	Start      float64
	Limit      float64
	Floor      float64
	Precision  float64
	Budget     time.Duration
	MaxDropped float64
}

func (f FindMax) withDefaults() FindMax {
	if f.Step <= 0 {
		f.Step = DefaultFindMaxStep
	}
	if f.StepWarmup <= 0 {
		f.StepWarmup = f.Step / 6
	}
	if f.Start <= 0 {
		f.Start = DefaultFindMaxStart
	}
	if f.Limit <= 0 {
		f.Limit = DefaultFindMaxLimit
	}
	if f.Floor <= 0 {
		// A step must schedule enough operations to have a p99 at all.
		f.Floor = max(DefaultFindMaxFloor, minStepOps/f.Step.Seconds())
	}
	f.Start = min(max(f.Start, f.Floor), f.Limit)
	if f.Precision <= 0 {
		f.Precision = DefaultFindMaxPrecision
	}
	if f.Budget <= 0 {
		f.Budget = DefaultFindMaxBudget
	}
	if f.MaxDropped <= 0 {
		f.MaxDropped = DefaultFindMaxMaxDropped
	}
	return f
}

// search runs a FindMax on one cell: base is the cell's engine
// configuration (its pacer is replaced at each step), stamp the cell's
// identity for the gates' selectors. It returns the statistics of the
// highest step that met the gates (else of the lowest step tried) and the
// search; nil statistics when no step ran.
func (f FindMax) search(ctx context.Context, base bench.Config, op bench.Op, stamp result.Cell) (*bench.Stats, *result.Search, error) {
	f = f.withDefaults()
	s := &result.Search{StepSec: f.Step.Seconds(), StepWarmupSec: f.StepWarmup.Seconds()}
	for _, g := range f.Gates {
		s.Gates = append(s.Gates, g.Expr)
	}
	start := time.Now()
	var best, lowest *bench.Stats
	var lowestRate float64
	rate := f.Start
	retried := false
	// A step takes its warm-up, its window and the drain after it.
	stepCost := f.StepWarmup + f.Step + 200*time.Millisecond
	for {
		if ctx.Err() != nil {
			s.Stopped = "interrupted"
			break
		}
		if len(s.Steps) >= maxSearchSteps || time.Since(start)+stepCost > f.Budget {
			s.Stopped = "budget"
			break
		}
		cfg := base
		cfg.Pacer = bench.ConstantPacer{Rate: rate}
		cfg.Duration, cfg.Warmup, cfg.Requests, cfg.StageEnds = f.Step, f.StepWarmup, 0, nil
		if len(s.Steps) > 0 {
			cfg.StartAt = time.Time{}
		}
		st, err := bench.Run(ctx, cfg, op)
		if err != nil {
			return nil, nil, err
		}
		if st.Interrupted {
			s.Stopped = "interrupted"
			break
		}
		step := f.judge(st, rate, stamp)
		s.Steps = append(s.Steps, step)
		if !step.Met && !retried {
			// A failure is confirmed by a second step at the same rate
			// before the search moves on: one stall of a busy machine
			// should not decide it.
			retried = true
			continue
		}
		retried = false
		if lowest == nil || rate < lowestRate {
			lowest, lowestRate = st, rate
		}
		if step.Met {
			if rate > s.MaxRate {
				s.MaxRate, best = rate, st
			}
			s.Found = true
		} else if s.FailedRate == 0 || rate < s.FailedRate {
			s.FailedRate = rate
		}
		switch {
		case s.Found && s.FailedRate > 0:
			if (s.FailedRate-s.MaxRate)/s.MaxRate <= f.Precision {
				s.Stopped = "converged"
			}
			rate = math.Round((s.MaxRate + s.FailedRate) / 2)
			if rate <= s.MaxRate || rate >= s.FailedRate {
				s.Stopped = "converged" // nothing between them to try
			}
		case s.Found: // only successes so far: double
			if rate >= f.Limit {
				s.Stopped = "limit"
			}
			rate = min(rate*2, f.Limit)
		default: // only failures so far: halve
			if rate <= f.Floor {
				s.Stopped = "floor"
			}
			rate = max(math.Round(rate/2), f.Floor)
		}
		if s.Stopped != "" {
			break
		}
	}
	s.ElapsedSec = time.Since(start).Seconds()
	if best == nil {
		best = lowest
	}
	return best, s, nil
}

// judge turns one step's statistics into a SearchStep, judged by every
// gate that selects the cell and by the share of the schedule dropped.
func (f FindMax) judge(st *bench.Stats, rate float64, stamp result.Cell) result.SearchStep {
	c := stamp
	c.Verdict = result.Measured
	st.Fill(&c)
	step := result.SearchStep{
		Rate: rate, Ops: c.Ops, Dropped: c.Dropped, ThroughputOps: c.ThroughputOps,
		Errors: c.Errors, Latency: c.Latency, Met: true,
	}
	if st.Ops == 0 {
		step.Met = false
		step.Failed = append(step.Failed, "no operation ended in the step")
	}
	for _, g := range f.Gates {
		if !g.Selects(&c) {
			continue
		}
		if v := g.Measure(&c); !g.Holds(v) {
			step.Met = false
			step.Failed = append(step.Failed, fmt.Sprintf("%s (%s)", g.Expr, g.FormatValue(v)))
		}
	}
	if due := st.Ops + st.Dropped; due > 0 && float64(st.Dropped) > f.MaxDropped*float64(due) {
		step.Met = false
		step.Failed = append(step.Failed, fmt.Sprintf("dropped %d of %d operations due", st.Dropped, due))
	}
	return step
}

// searchSummary is a find-max cell's one line.
func searchSummary(s *result.Search) string {
	took := fmt.Sprintf("%d steps in %.0fs, %s", len(s.Steps), s.ElapsedSec, s.Stopped)
	if !s.Found {
		return fmt.Sprintf("no rate met %s (lowest tried %s/s) · %s", strings.Join(s.Gates, ", "), formatRate(lowestRate(s)), took)
	}
	line := fmt.Sprintf("highest rate meeting %s: %s/s", strings.Join(s.Gates, ", "), formatRate(s.MaxRate))
	if s.FailedRate > 0 {
		line += fmt.Sprintf(" (%s/s did not", formatRate(s.FailedRate))
		for _, st := range s.Steps {
			if st.Rate == s.FailedRate && len(st.Failed) > 0 {
				line += ": " + st.Failed[0]
				break
			}
		}
		line += ")"
	}
	return line + " · " + took
}

func lowestRate(s *result.Search) float64 {
	low := 0.0
	for _, st := range s.Steps {
		if low == 0 || st.Rate < low {
			low = st.Rate
		}
	}
	return low
}

func formatRate(r float64) string { return fmt.Sprintf("%.0f", r) }
