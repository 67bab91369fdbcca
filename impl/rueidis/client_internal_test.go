package rueidis

import (
	"errors"
	"testing"
	"time"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
)

// TestRetryAtMost: rueidis asks the delay with attempts counted from 1
// for the first retry; n retries are allowed, each with a back-off of
// rueidis's shape (positive, at most 1 s), and the next is refused.
func TestRetryAtMost(t *testing.T) {
	for _, n := range []int{1, 2, 3, 25, impl.MaxRetries} {
		delay := retryAtMost(n)
		for attempts := 1; attempts <= n; attempts++ {
			if d := delay(attempts, rd.Completed{}, errors.New("EOF")); d <= 0 || d > time.Second {
				t.Fatalf("retryAtMost(%d)(%d) = %v, want a back-off in (0, 1s]", n, attempts, d)
			}
		}
		if d := delay(n+1, rd.Completed{}, errors.New("EOF")); d >= 0 {
			t.Errorf("retryAtMost(%d)(%d) = %v, want a negative delay (no retry)", n, n+1, d)
		}
	}
}

func TestURLDuration(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr error // nil: any error when bad is true
		bad     bool
	}{
		{in: "150ms", want: 150 * time.Millisecond},
		{in: "2", want: 2 * time.Second},
		{in: "1m", want: time.Minute},
		{in: "0", bad: true, wantErr: impl.ErrNotSupported},
		{in: "-1", bad: true, wantErr: impl.ErrNotSupported},
		{in: "-1s", bad: true, wantErr: impl.ErrNotSupported},
		{in: "soon", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := urlDuration(tc.in)
			switch {
			case tc.bad && err == nil:
				t.Fatalf("urlDuration(%q) = %v, want an error", tc.in, d)
			case tc.bad && tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("urlDuration(%q): %v, want an error wrapping %v", tc.in, err, tc.wantErr)
			case !tc.bad && (err != nil || d != tc.want):
				t.Fatalf("urlDuration(%q) = %v, %v; want %v", tc.in, d, err, tc.want)
			}
		})
	}
}
