package impl

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAcquireLoopBusyOrCutOff checks how AcquireLoop's errors tell a wait
// that ended with every attempt answered "taken" (ErrLockBusy: the lock's
// own no, classified as contention by LockBusy) from one whose last
// attempt was cut off mid-command, which may have taken the lock.
func TestAcquireLoopBusyOrCutOff(t *testing.T) {
	pause := func(int) time.Duration { return 5 * time.Millisecond }
	for _, tc := range []struct {
		name     string
		try      func(ctx context.Context) (Lease, bool, error)
		wantBusy bool
	}{
		{
			name:     "every attempt found the lock taken",
			try:      func(context.Context) (Lease, bool, error) { return Lease{}, false, nil },
			wantBusy: true,
		},
		{
			name: "the last attempt was cut off by the deadline",
			try: func(ctx context.Context) (Lease, bool, error) {
				<-ctx.Done()
				return Lease{}, false, errors.New("i/o timeout")
			},
			wantBusy: false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := AcquireLoop(ctx, "l", tc.try, pause)
			if !errors.Is(err, ErrLockNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want ErrLockNotAcquired and the deadline", err)
			}
			wrapped, busy := LockBusy(err)
			if busy != tc.wantBusy || errors.Is(err, ErrLockBusy) != tc.wantBusy {
				t.Fatalf("busy %t (%v), want %t", busy, err, tc.wantBusy)
			}
			class := Classify(wrapped)
			if want := map[bool]string{true: ClassContention, false: ClassTimeout}[tc.wantBusy]; class != want {
				t.Errorf("class %q, want %q (%v)", class, want, wrapped)
			}
		})
	}
}
