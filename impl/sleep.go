package impl

import (
	"context"
	"time"
)

// Sleep pauses d, or less when ctx ends first, and then returns ctx.Err().
// A d <= 0 returns nil at once, without looking at ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
