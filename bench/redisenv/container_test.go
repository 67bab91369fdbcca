package redisenv

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestForcedContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if dockerAvailable(ctx) == nil {
		if testing.Short() {
			t.Skip("starts a Redis container; skipped in -short mode")
		}
		ctx, cancel := context.WithTimeout(ctx, containerStartTimeout)
		defer cancel()
		s, err := Provide(ctx, Options{Force: KindContainer, Getenv: noenv})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Kind != KindContainer || s.Version == "" {
			t.Errorf("server = %+v", s)
		}
		if err := s.Admin().Ping(ctx).Err(); err != nil {
			t.Error(err)
		}
		return
	}
	start := time.Now()
	s, err := Provide(ctx, Options{Force: KindContainer, Getenv: noenv})
	if s != nil {
		_ = s.Close()
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Provide error = %v, want ErrUnavailable", err)
	}
	// The probe's time-out bounds the wait (the margin is a hang guard).
	if took := time.Since(start); took > dockerProbeTimeout+30*time.Second {
		t.Errorf("forced container without Docker took %v", took)
	}
	t.Logf("%v (after %v)", err, time.Since(start))
}
