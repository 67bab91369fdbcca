package impl

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"zero", live, 0, nil},
		{"negative", live, -time.Second, nil},
		{"zero on an ended context", done, 0, nil},
		{"short", live, time.Millisecond, nil},
		{"ended context", done, time.Hour, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Sleep(tc.ctx, tc.d); !errors.Is(err, tc.want) {
				t.Errorf("Sleep(%v) = %v, want %v", tc.d, err, tc.want)
			}
		})
	}
	t.Run("context ends while sleeping", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if err := Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Sleep = %v, want DeadlineExceeded", err)
		}
	})
}
