package scenarios

import (
	"github.com/paybench/paybench/bench/history"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/histcheck"
)

// loadHistoryEntries bounds the entries a load cell's recorder holds, all
// workers together (64 bytes each: 64 MiB). A run that makes more has an
// incomplete history, which its check says (result unknown).
const loadHistoryEntries = 1 << 20

// loadRecords reports whether a load cell records its history: with
// --history on only (auto is for scenario cells; a load is as long as its
// flags make it), and when its worker count is known.
func loadRecords(env *LoadEnv) bool {
	return env.History.Mode == histcheck.ModeOn && env.Workers > 0
}

// loadRecorder returns the recorder of a load cell (nil when it records
// nothing): one log per worker, loadHistoryEntries shared among them (or
// the whole operation count each, when that is known and smaller).
func loadRecorder(env *LoadEnv) *history.Recorder {
	if !loadRecords(env) {
		return nil
	}
	room := loadHistoryEntries / env.Workers
	if env.HistoryOps > 0 && env.HistoryOps < int64(room) {
		room = int(env.HistoryOps) + 1
	}
	return history.New(history.Options{Clients: env.Workers, PerClient: room})
}

// loadNotRecorded is the history object of a load cell of an operation
// with a model that recorded nothing: with --history on, why; nil
// otherwise.
func loadNotRecorded(env *LoadEnv, model string) *result.History {
	if env.History.Mode != histcheck.ModeOn {
		return nil
	}
	return &result.History{Model: model, Result: result.HistoryNotChecked, Reason: "the run's worker count is not known beforehand: nothing recorded"}
}
