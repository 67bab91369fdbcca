package histcheck

import (
	"fmt"
	"sort"

	"github.com/paybench/paybench/bench/history"
)

// DedupeSubmit is the dedupe guard model's one operation (Entry.Kind):
// submission In of the request Key; OK accepted, Out the submission the
// guard named as holding the fingerprint (its own when accepted; -1 when
// the id named is no submission of the request).
const DedupeSubmit uint8 = 3

// dedupeState is a fingerprint's state: the submission holding it (-1:
// none) and the earliest time its claim can have been made (the holder's
// call), for the window.
type dedupeState struct {
	holder, since int64
}

// Dedupe is the dedupe guard model: per request fingerprint, the first
// submission is accepted and holds the fingerprint; every later one is
// refused with the holder's id, for window after the claim. The claim's
// expiry is modelled from the client's clock, conservatively: a submission
// that returned at least window after the holder was called may find the
// claim expired, and then either answer is legal. A submission whose reply
// was lost may or may not have claimed the fingerprint.
func Dedupe(window int64, request func(key int64) string) Model {
	return Model{
		Name:      "dedupe guard",
		Init:      func(int64) any { return dedupeState{holder: -1} },
		Step:      func(state any, e history.Entry) []any { return dedupeStep(window, state.(dedupeState), e) },
		Describe:  func(e history.Entry) string { return describeDedupe(request, e) },
		Partition: func(key int64) string { return "request " + request(key) },
		Explain:   func(ops []history.Entry) (string, []history.Entry) { return explainDedupe(window, request, ops) },
	}
}

func dedupeStep(window int64, s dedupeState, e history.Entry) []any {
	claim := dedupeState{holder: e.In, since: e.Call}
	free := s.holder < 0 || window > 0 && e.Return-s.since >= window
	switch {
	case e.Unknown && free:
		return []any{s, claim}
	case e.Unknown:
		return []any{s}
	case e.OK && free:
		return []any{claim}
	case !e.OK && s.holder >= 0 && e.Out == s.holder:
		return []any{s}
	}
	return nil
}

func describeDedupe(request func(int64) string, e history.Entry) string {
	who := fmt.Sprintf("%s#%d", request(e.Key), e.In)
	switch {
	case e.Unknown:
		return who + " → reply lost (may or may not have claimed it)"
	case e.OK:
		return who + " → accepted"
	case e.Out < 0:
		return who + " → refused, held by no submission of the request"
	}
	return fmt.Sprintf("%s → refused, held by %s#%d", who, request(e.Key), e.Out)
}

// explainDedupe finds submissions of one request that were all accepted
// within the window.
func explainDedupe(window int64, request func(int64) string, ops []history.Entry) (string, []history.Entry) {
	var acc []history.Entry
	for _, e := range ops {
		if !e.Unknown && e.OK {
			acc = append(acc, e)
		}
	}
	if len(acc) < 2 {
		return "", nil
	}
	sort.Slice(acc, func(i, j int) bool { return acc[i].Return < acc[j].Return })
	first := acc[0].Call
	for _, e := range acc {
		first = min(first, e.Call)
	}
	if window > 0 && acc[1].Return-first >= window {
		return "", nil // the claim may have expired in between
	}
	r := request(acc[0].Key)
	if len(acc) == 2 {
		return fmt.Sprintf("submissions %s#%d and %s#%d of one request were both accepted", r, acc[0].In, r, acc[1].In), acc
	}
	return fmt.Sprintf("%d submissions of request %s were all accepted (%s#%d, %s#%d, ...)", len(acc), r, r, acc[0].In, r, acc[1].In), acc
}
