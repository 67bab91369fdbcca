package errext

import (
	"errors"
	"fmt"
	"testing"
)

func TestWithExitCodeIfNoneKeepsTheInnerCode(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		want ExitCode
		has  bool
	}{
		{"nil is OK", nil, OK, true},
		{"plain error has none", base, Fail, false},
		{"added code", WithExitCodeIfNone(base, Redis), Redis, true},
		{"inner code kept", WithExitCodeIfNone(WithExitCodeIfNone(base, Usage), Redis), Usage, true},
		{"inner code kept through %w", WithExitCodeIfNone(fmt.Errorf("outer: %w", Errorf(NotReproduced, "x")), Fail), NotReproduced, true},
		{"silent", Silent(Interrupted), Interrupted, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, has := Code(tc.err)
			if got != tc.want || has != tc.has {
				t.Fatalf("Code = %d, %v; want %d, %v", got, has, tc.want, tc.has)
			}
		})
	}
	if WithExitCodeIfNone(nil, Fail) != nil {
		t.Fatal("nil error gained a code")
	}
	if !errors.Is(WithExitCodeIfNone(base, Redis), base) {
		t.Fatal("the code hides the wrapped error")
	}
	if !IsSilent(Silent(Fail)) || IsSilent(New(Fail, "x")) {
		t.Fatal("IsSilent is wrong")
	}
	if got := New(Usage, "bad flag").Error(); got != "bad flag" {
		t.Fatalf("message %q", got)
	}
}
