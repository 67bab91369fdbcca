// Package result defines the versioned document every paybench command
// writes (run, load and suite) and every renderer reads. It is plain data:
// no Redis, no engine, no rendering.
package result

import (
	"time"
)

// SchemaVersion is the version of the JSON document. It changes whenever a
// field changes meaning or is removed; added fields keep it.
const SchemaVersion = 1

// Verdict is the outcome of one cell.
type Verdict string

// Verdicts. A strategy expected to hold gets PASS or FAIL; one expected to
// break (the seed's code) gets REPRODUCED or NOT-REPRODUCED. ERROR means the
// cell could not run to its end; UNSUPPORTED that the backend lacks the
// strategy; MEASURED is a load cell with no invariants to judge;
// INCONCLUSIVE that the cell ran but cannot be judged.
const (
	Pass          Verdict = "PASS"
	Fail          Verdict = "FAIL"
	Reproduced    Verdict = "REPRODUCED"
	NotReproduced Verdict = "NOT-REPRODUCED"
	Error         Verdict = "ERROR"
	Unsupported   Verdict = "UNSUPPORTED"
	Measured      Verdict = "MEASURED"
	// Inconclusive: the cell ran, but what it read back cannot be judged —
	// operations failed, the server restarted or was flushed, the
	// harness's own reads failed, or it was interrupted. Cell.Reason says
	// which. It is neither a pass nor a failure: compare and gates do not
	// judge such a cell, and AsExpected is false for it.
	Inconclusive Verdict = "INCONCLUSIVE"
)

// Expectation says whether a strategy is expected to hold its invariants or
// to break them.
type Expectation string

// Expectations.
const (
	Hold  Expectation = "hold"
	Break Expectation = "break"
)

// Document is one paybench result.
type Document struct {
	Schema      int       `json:"schema"`
	Kind        string    `json:"kind"` // run, load or suite
	Tool        Tool      `json:"tool"`
	Command     []string  `json:"command"` // passwords redacted
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Interrupted bool      `json:"interrupted"`
	Fairness    Fairness  `json:"fairness"`
	Cells       []Cell    `json:"cells"`

	// Host is the name of the machine that generated the load.
	Host string `json:"host,omitempty"`
	// Mode is the suite's size: quick, default or long ("" for run and
	// load).
	Mode string `json:"mode,omitempty"`
	// Gates holds the outcome of every --gate expression on every cell it
	// applied to.
	Gates []GateOutcome `json:"gates,omitempty"`
	// Sources lists the documents a `paybench merge` combined (empty for a
	// document written by one paybench process).
	Sources []Source `json:"sources,omitempty"`
	// Warnings lists what a reader should know before trusting the
	// document, one line each: for a merge, inputs that ran with
	// different parameters, against different servers or with different
	// paybench builds, or that started far apart.
	Warnings []string `json:"warnings,omitempty"`
}

// GateOutcome is one absolute gate judged on one cell.
type GateOutcome struct {
	// Gate is the expression as written, such as "p99<5ms".
	Gate string `json:"gate"`
	// Cell names the cell: scenario-or-operation/backend/strategy.
	Cell string `json:"cell"`
	// Value is the cell's figure in the gate's unit (µs for latencies,
	// operations per second, a count, or a fraction for error_rate).
	Value float64 `json:"value"`
	Holds bool    `json:"holds"`
}

// Source is one input of a merged document.
type Source struct {
	// Name is the file the document was read from.
	Name     string    `json:"name"`
	Host     string    `json:"host,omitempty"`
	Commit   string    `json:"commit,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// Tool identifies the paybench build that wrote the document.
type Tool struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
}

// Fairness is what a reader needs to judge whether two cells were measured
// on the same footing.
type Fairness struct {
	GOMAXPROCS int                          `json:"gomaxprocs"`
	NumCPU     int                          `json:"num_cpu"`
	GoVersion  string                       `json:"go_version"`
	OS         string                       `json:"os"`
	Arch       string                       `json:"arch"`
	Libraries  map[string]string            `json:"libraries"`         // module path -> version
	Clients    map[string]map[string]string `json:"clients,omitempty"` // backend -> settings
	Server     Server                       `json:"server"`
}

// Server describes the Redis that served the run.
type Server struct {
	Kind    string `json:"kind"` // url, spawn, container, embedded or redlock
	Version string `json:"version"`
	Address string `json:"address"` // password redacted
	Mode    string `json:"mode,omitempty"`
	// Nodes is a Redis Cluster's topology at the end of the run, masters
	// first (absent on one server).
	Nodes []ClusterNode `json:"nodes,omitempty"`
}

// ClusterNode is one node of a Redis Cluster, as CLUSTER NODES reports it.
type ClusterNode struct {
	ID       string   `json:"id"`
	Addr     string   `json:"addr"`
	Role     string   `json:"role"` // master or replica
	MasterID string   `json:"master_id,omitempty"`
	Slots    []string `json:"slots,omitempty"` // a master's slot ranges, such as "0-5460"
	Failed   bool     `json:"failed,omitempty"`
}

// Cell is one (scenario or operation, backend, strategy) measurement.
type Cell struct {
	Scenario  string      `json:"scenario,omitempty"`
	Operation string      `json:"operation,omitempty"`
	Backend   string      `json:"backend"`
	Strategy  string      `json:"strategy"`
	Expect    Expectation `json:"expect,omitempty"`
	Verdict   Verdict     `json:"verdict"`
	// Summary is one human line with the cell's key numbers, such as
	// "sold 412 units of 100 — oversold by 312".
	Summary string `json:"summary,omitempty"`
	// Error says why the cell is ERROR or UNSUPPORTED.
	Error string `json:"error,omitempty"`
	// Reason says why the cell is INCONCLUSIVE, such as "the server
	// restarted during the cell (run_id changed)".
	Reason string `json:"reason,omitempty"`
	// Interrupted says the cell was stopped before its end (Ctrl-C): its
	// figures are partial, and compare and gates treat it as missing.
	Interrupted bool               `json:"interrupted,omitempty"`
	Invariants  []Invariant        `json:"invariants,omitempty"`
	Figures     map[string]float64 `json:"figures,omitempty"`
	Params      map[string]string  `json:"params,omitempty"`

	Ops    int64            `json:"ops"`
	Errors map[string]int64 `json:"errors,omitempty"`
	// Faults lists the faults applied during the cell (--fault), with
	// their actual times; the verdict holds under them.
	Faults []Fault `json:"faults,omitempty"`
	// Settled counts failed operations whose outcome was unknown (a reply
	// lost to a time-out or a dropped connection) and that the cell settled
	// against the server: it found out whether each had happened, and its
	// invariants account for them. Failures beyond these make the cell
	// INCONCLUSIVE.
	Settled int64 `json:"settled,omitempty"`
	// ErrorSamples holds, per class of Errors, the first error message of
	// that class: the server's own words for an error reply, one line of at
	// most 200 bytes, with the credentials of any URL redacted.
	ErrorSamples  map[string]string `json:"error_samples,omitempty"`
	Dropped       int64             `json:"dropped"`
	ElapsedSec    float64           `json:"elapsed_s"`
	ThroughputOps float64           `json:"throughput_ops"`
	Latency       Latency           `json:"latency"`
	// Steps holds per-operation latency when a cell runs several operations.
	Steps  map[string]Latency `json:"steps,omitempty"`
	Series []Point            `json:"series,omitempty"`
	// SeriesStart is the time, in seconds, from the cell's start (when
	// its faults were started, the origin of Fault.Start and End) to the
	// series' t = 0 (the end of the warm-up): a fault at Start sits at
	// Start - SeriesStart on the series' time axis. 0 when the cell was
	// run without an origin (documents written before it existed).
	SeriesStart float64 `json:"series_start_s,omitempty"`
	// Histograms holds hdrhistogram-go's compressed encodings (base64),
	// keyed "corrected", "uncorrected" and "step:<name>", so results can be
	// merged and re-rendered exactly.
	Histograms map[string]string `json:"histograms,omitempty"`

	// FigureMerge says how `paybench merge` combines a figure of the same
	// cell from several load generators: "sum", "max", "min" or "same"
	// (all inputs read the same server-side value). A figure it does not
	// name is summed, and an invariant whose rule reads such a figure is
	// not re-judged.
	FigureMerge map[string]string `json:"figure_merge,omitempty"`
	// Generators is the number of load generators a merged cell combines
	// (0 for a cell measured by one paybench process).
	Generators int `json:"generators,omitempty"`
	// Stages holds the figures of each stage of a `load --stages` cell.
	Stages []Stage `json:"stages,omitempty"`
	// Search holds a `load --find-max` cell's search: every step and the
	// highest rate that met every gate. The cell's own figures are that
	// step's (or, when none met them, the lowest step's).
	Search *Search `json:"search,omitempty"`
	// ClusterKeys counts, on a Redis Cluster, the cell's keys each master
	// held at the cell's end, by master address (absent on one server):
	// which master served the cell's item(s).
	ClusterKeys map[string]int64 `json:"cluster_keys,omitempty"`
	// ClusterStockKeys is ClusterKeys for the cell's stock keys only
	// (counters and shards, "stock:{item}..."): the master(s) that served
	// the items' stock.
	ClusterStockKeys map[string]int64 `json:"cluster_stock_keys,omitempty"`
	// ClusterCommands counts, on a Redis Cluster, the commands each master
	// processed during the cell (the change of its INFO stats
	// total_commands_processed: commands run inside scripts count too, as
	// do the cell's setup and paybench's own reads), by master address:
	// how the load spread over the masters.
	ClusterCommands map[string]int64 `json:"cluster_commands,omitempty"`
	// History is the cell's history checked for linearizability
	// (--history); absent when it was not recorded.
	History *History `json:"history,omitempty"`
}

// Stage is one stage of a `load --stages` cell: the rate ramps linearly
// from FromRate to ToRate between Start and End (seconds from the start of
// the measured window).
type Stage struct {
	Start    float64 `json:"start_s"`
	End      float64 `json:"end_s"`
	FromRate float64 `json:"from_rate"`
	ToRate   float64 `json:"to_rate"`
	// TargetRate is the stage's scheduled operations per second on
	// average: Due over its length, for the whole schedule (every shard).
	TargetRate float64 `json:"target_rate"`
	// Due counts the operations the schedule made due in the stage;
	// Dropped those of them that never started.
	Due     int64 `json:"due"`
	Dropped int64 `json:"dropped"`
	// Ops counts the operations that ended in the stage, and
	// ThroughputOps is Ops over the stage's length.
	Ops           int64            `json:"ops"`
	ThroughputOps float64          `json:"throughput_ops"`
	Errors        map[string]int64 `json:"errors,omitempty"`
	Latency       Latency          `json:"latency"`
	// Histograms holds the stage's encoded histograms, as Cell.Histograms.
	Histograms map[string]string `json:"histograms,omitempty"`
}

// Search is what `load --find-max` searched and found.
type Search struct {
	// Gates are the gates every step was judged by, as written.
	Gates []string `json:"gates"`
	// StepSec is each step's measured length, after StepWarmupSec.
	StepSec       float64 `json:"step_s"`
	StepWarmupSec float64 `json:"step_warmup_s"`
	// Found is true when a step met every gate; MaxRate is then the
	// highest such rate. FailedRate is the lowest rate that did not (0
	// when none failed: the search reached its limit).
	Found      bool    `json:"found"`
	MaxRate    float64 `json:"max_rate"`
	FailedRate float64 `json:"failed_rate,omitempty"`
	// Stopped says why the search ended: "converged" (the two rates are
	// within the precision), "limit" (the highest rate it may try met the
	// gates), "floor" (the lowest rate it may try failed), "budget" (its
	// time ran out) or "interrupted".
	Stopped string `json:"stopped"`
	// ElapsedSec is the search's wall-clock time.
	ElapsedSec float64      `json:"elapsed_s"`
	Steps      []SearchStep `json:"steps"`
}

// SearchStep is one rate a search tried.
type SearchStep struct {
	Rate          float64          `json:"rate"`
	Ops           int64            `json:"ops"`
	Dropped       int64            `json:"dropped"`
	ThroughputOps float64          `json:"throughput_ops"`
	Errors        map[string]int64 `json:"errors,omitempty"`
	Latency       Latency          `json:"latency"`
	// Met is true when every gate held (and few enough operations were
	// dropped); Failed lists the gates that did not, such as
	// "p99<2ms (3.1ms)".
	Met    bool     `json:"met"`
	Failed []string `json:"failed,omitempty"`
}

// Fault is one scheduled fault as it happened during a cell, with its
// actual times.
type Fault struct {
	// Spec is the fault as given, such as "pause:1s@2s".
	Spec string `json:"spec"`
	// Kind is the fault's kind (pause, kill-conns, restart, oom, latency,
	// reset, reshard, failover).
	Kind string `json:"kind"`
	// Method says how it was done: SIGSTOP/SIGCONT, CLIENT PAUSE, CLIENT
	// KILL, SIGKILL and restart, CONFIG SET maxmemory, proxy.
	Method string `json:"method,omitempty"`
	// Start and End are the first firing's start and the last firing's
	// end, in seconds from the cell's start (End 0: it never fired).
	Start float64 `json:"start_s"`
	End   float64 `json:"end_s"`
	// Count is how many times it fired.
	Count int `json:"count"`
	// Hits counts the connections it killed or reset, in all.
	Hits int `json:"hits,omitempty"`
	// Error says why it could not be applied, in the server's words.
	Error string `json:"error,omitempty"`
	// From names the input file a `paybench merge` took the fault from
	// (its times are moved onto the merged cell's clock).
	From string `json:"from,omitempty"`
}

// Histogram keys of Cell.Histograms.
const (
	HistogramCorrected   = "corrected"
	HistogramUncorrected = "uncorrected"
	HistogramStepPrefix  = "step:"
)

// Figure merge modes of Cell.FigureMerge.
const (
	MergeSum  = "sum"
	MergeMax  = "max"
	MergeMin  = "min"
	MergeSame = "same"
)

// Invariant is one checked property and its figures.
type Invariant struct {
	Name   string `json:"name"`
	Holds  bool   `json:"holds"`
	Detail string `json:"detail"`
	// Rule, when set, states the invariant over the cell's figures, such
	// as "oversold_units <= 0" or "units_sold == stock_taken" (a figure,
	// one of < <= > >= == !=, and a figure or a number), so that a merge
	// can re-judge it on the combined figures.
	Rule string `json:"rule,omitempty"`
	// Merged says what a merge did with the invariant: "rejudged" (its
	// rule was evaluated on the combined figures) or "kept" (it holds only
	// if it held in every input; Detail lists each input's).
	Merged string `json:"merged,omitempty"`
	// Proven, on a broken invariant, says the break does not depend on the
	// cell's failed operations: whatever they did, it is broken (two lock
	// holders on live leases, each of whose steps succeeded, under a lock
	// whose failed operations cannot free another holder's lock). An
	// expected break is then REPRODUCED although operations failed.
	Proven bool `json:"proven,omitempty"`
}

// Values of Invariant.Merged.
const (
	Rejudged = "rejudged"
	Kept     = "kept"
)

// Key names the cell in reports, gates and comparisons:
// "scenario-or-operation/backend/strategy".
func (c *Cell) Key() string { return c.Name() + "/" + c.Backend + "/" + c.Strategy }

// Name is the cell's scenario, or its operation for a load cell.
func (c *Cell) Name() string {
	if c.Scenario != "" {
		return c.Scenario
	}
	return c.Operation
}

// Latency holds the corrected (from the intended start) and uncorrected
// (from the actual send) summaries. In a closed loop they are equal.
type Latency struct {
	Corrected   Summary `json:"corrected"`
	Uncorrected Summary `json:"uncorrected"`
}

// Summary is a latency distribution in microseconds.
type Summary struct {
	Count int64   `json:"count"`
	P50   int64   `json:"p50_us"`
	P90   int64   `json:"p90_us"`
	P99   int64   `json:"p99_us"`
	P999  int64   `json:"p999_us"`
	Max   int64   `json:"max_us"`
	Mean  float64 `json:"mean_us"`
}

// Point is one interval of a time series.
type Point struct {
	T      float64 `json:"t_s"` // seconds since the measured start
	Ops    int64   `json:"ops"`
	Errors int64   `json:"errors"`
	P50    int64   `json:"p50_us"`
	P99    int64   `json:"p99_us"`
	Max    int64   `json:"max_us"`
	// ErrorsByClass splits Errors by error class (the classes of
	// Cell.Errors): its counts add up to Errors. Absent for an interval
	// without failures, and in documents written before it existed.
	ErrorsByClass map[string]int64 `json:"errors_by_class,omitempty"`
}

// Judge sets c.Verdict from c.Expect and c.Invariants, unless the cell
// already carries ERROR, UNSUPPORTED or INCONCLUSIVE.
func (c *Cell) Judge() {
	if c.Verdict == Error || c.Verdict == Unsupported || c.Verdict == Inconclusive {
		return
	}
	broken := false
	for _, inv := range c.Invariants {
		if !inv.Holds {
			broken = true
		}
	}
	switch c.Expect {
	case Break:
		c.Verdict = NotReproduced
		if broken {
			c.Verdict = Reproduced
		}
	case Hold:
		c.Verdict = Pass
		if broken {
			c.Verdict = Fail
		}
	default:
		c.Verdict = Measured
	}
}

// JudgeHistory applies the cell's checked history to its verdict, after
// Judge: a history that is not linearizable turns PASS into FAIL and
// NOT-REPRODUCED into REPRODUCED (the witness joins the summary); a
// history whose check was undecided never lets a PASS stand — the cell
// becomes INCONCLUSIVE saying why — and is noted on any other verdict.
func (c *Cell) JudgeHistory() {
	h := c.History
	if h == nil {
		return
	}
	switch h.Result {
	case HistoryNotLinearizable:
		switch c.Verdict {
		case Pass:
			c.Verdict = Fail
		case NotReproduced:
			c.Verdict = Reproduced
		}
		c.AddSummary("history not linearizable: " + h.Witness)
	case HistoryUnknown:
		if c.Verdict == Pass {
			c.Verdict = Inconclusive
			c.Reason = "the invariants held, but the history's linearizability is unknown: " + h.Reason
			return
		}
		c.AddSummary("history not decided: " + h.Reason)
	}
}

// AddSummary appends part to the cell's summary, after "; " when the
// summary is not empty.
func (c *Cell) AddSummary(part string) {
	if c.Summary != "" && part != "" {
		c.Summary += "; "
	}
	c.Summary += part
}

// AsExpected reports whether the verdict is what the cell's expectation
// asked for (PASS, REPRODUCED, MEASURED and UNSUPPORTED are; FAIL,
// NOT-REPRODUCED, ERROR and INCONCLUSIVE are not).
func (v Verdict) AsExpected() bool {
	switch v {
	case Pass, Reproduced, Measured, Unsupported:
		return true
	}
	return false
}

// Judged reports whether the verdict judges the cell's invariants or
// figures: false for ERROR, UNSUPPORTED and INCONCLUSIVE, whose figures are
// absent or cannot be trusted.
func (v Verdict) Judged() bool {
	switch v {
	case Error, Unsupported, Inconclusive:
		return false
	}
	return true
}

// CellInterrupted reports whether c, a cell of doc, was interrupted: its
// own flag is set, or doc itself was interrupted. In an interrupted
// document no cell is taken as whole, since a document written before
// cells carried their own flag cannot say which one a Ctrl-C cut short.
func CellInterrupted(doc *Document, c *Cell) bool {
	return c.Interrupted || doc != nil && doc.Interrupted
}

// Results of History.Result.
const (
	// HistoryLinearizable: some serial order of the operations explains
	// every answer the clients were told.
	HistoryLinearizable = "linearizable"
	// HistoryNotLinearizable: none does; History.Witness says which
	// answers conflict.
	HistoryNotLinearizable = "not-linearizable"
	// HistoryUnknown: the check could not decide (its time budget ran out,
	// the history is incomplete); History.Reason says why. It never turns
	// into a PASS.
	HistoryUnknown = "unknown"
	// HistoryNotChecked: the cell has a model but did not record its
	// history (--history auto above its bound); it does not change the
	// verdict.
	HistoryNotChecked = "not-checked"
)

// History is a cell's history — what every client was told — checked for
// linearizability against a model of the operations (--history).
type History struct {
	// Model names the sequential specification ("stock counter").
	Model string `json:"model"`
	// Result is linearizable, not-linearizable, unknown or not-checked.
	Result string `json:"result"`
	// Reason says why the result is unknown or not-checked.
	Reason string `json:"reason,omitempty"`
	// Ops is the number of operations checked, of which UnknownOutcomes
	// lost their replies (each may or may not have happened).
	Ops             int64 `json:"ops"`
	UnknownOutcomes int64 `json:"unknown_outcomes,omitempty"`
	// Partitions is how many independent parts (items, orders, locks)
	// were checked.
	Partitions int `json:"partitions"`
	// CheckSec is how long the check took, in seconds.
	CheckSec float64 `json:"check_s"`
	// Partition names the smallest partition that is not linearizable.
	Partition string `json:"partition,omitempty"`
	// Witness says in plain words what no serial order explains, such as
	// "buyers 17 and 42 were both told 7 remained".
	Witness string `json:"witness,omitempty"`
	// WitnessOps lists the few operations involved, with their times in
	// ms from the cell's start of recording.
	WitnessOps []string `json:"witness_ops,omitempty"`
	// WitnessSize is the number of operations of the smallest failing
	// prefix of the partition (the visualization shows them).
	WitnessSize int `json:"witness_size,omitempty"`
	// Visualization is the file, next to the HTML report, holding
	// porcupine's visualization of the failing prefix.
	Visualization string `json:"visualization,omitempty"`
	// Page is that visualization's HTML, kept in memory for the HTML
	// report to write (not part of the JSON).
	Page []byte `json:"-"`
}
