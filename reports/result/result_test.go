package result

import "testing"

func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		v                  Verdict
		asExpected, judged bool
	}{
		{Pass, true, true},
		{Reproduced, true, true},
		{Measured, true, true},
		{Unsupported, true, false},
		{Fail, false, true},
		{NotReproduced, false, true},
		{Error, false, false},
		{Inconclusive, false, false},
		{"SOMETHING-NEW", false, true},
	} {
		if got := tc.v.AsExpected(); got != tc.asExpected {
			t.Errorf("%s.AsExpected() = %v, want %v", tc.v, got, tc.asExpected)
		}
		if got := tc.v.Judged(); got != tc.judged {
			t.Errorf("%s.Judged() = %v, want %v", tc.v, got, tc.judged)
		}
	}
}

func TestJudgeKeepsVerdictsItDoesNotGive(t *testing.T) {
	broken := []Invariant{{Name: "x", Holds: false}}
	for _, tc := range []struct {
		verdict Verdict
		expect  Expectation
		want    Verdict
	}{
		{"", Hold, Fail},
		{"", Break, Reproduced},
		{"", "", Measured},
		{Pass, Hold, Fail},
		{Error, Hold, Error},
		{Unsupported, Hold, Unsupported},
		{Inconclusive, Hold, Inconclusive},
		{Inconclusive, Break, Inconclusive},
	} {
		c := Cell{Verdict: tc.verdict, Expect: tc.expect, Invariants: broken}
		c.Judge()
		if c.Verdict != tc.want {
			t.Errorf("Judge of %q expecting %q = %s, want %s", tc.verdict, tc.expect, c.Verdict, tc.want)
		}
	}
}

func TestCellInterrupted(t *testing.T) {
	for _, tc := range []struct {
		doc, cell, want bool
	}{
		{false, false, false},
		{false, true, true},
		{true, false, true},
		{true, true, true},
	} {
		d := &Document{Interrupted: tc.doc}
		c := &Cell{Interrupted: tc.cell}
		if got := CellInterrupted(d, c); got != tc.want {
			t.Errorf("document interrupted %v, cell %v: %v, want %v", tc.doc, tc.cell, got, tc.want)
		}
	}
	if CellInterrupted(nil, &Cell{}) {
		t.Error("a cell without a document is interrupted")
	}
}
