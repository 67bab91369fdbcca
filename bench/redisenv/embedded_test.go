package redisenv

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestEmbedded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var warn bytes.Buffer
	s, err := Provide(ctx, Options{Force: KindEmbedded, Getenv: noenv, Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	if warn.String() != EmbeddedWarning+"\n" {
		t.Errorf("warning = %q", warn.String())
	}
	if s.Kind != KindEmbedded || s.PID() != 0 || !strings.HasPrefix(s.Version, "miniredis") ||
		s.Mode != "standalone" || !strings.HasPrefix(s.URL, "redis://127.0.0.1:") {
		t.Errorf("server = %+v", s)
	}
	rdb := s.Admin().(*redis.Client)
	ro := rdb.Options()
	if ro.DialTimeout != DefaultDialTimeout || ro.ReadTimeout != 5*time.Second || ro.WriteTimeout != 5*time.Second ||
		ro.MaxRetries != 0 || !ro.ContextTimeoutEnabled {
		t.Errorf("admin client: dial %v read %v write %v retries %d ctx %v; want bounded, no retries",
			ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout, ro.MaxRetries, ro.ContextTimeoutEnabled)
	}
	if n, err := rdb.IncrBy(ctx, "pb:emb:n", 5).Result(); err != nil || n != 5 {
		t.Errorf("INCRBY = %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The server is gone: a new connection is refused.
	_, err = Provide(ctx, Options{URL: s.URL, Getenv: noenv, DialTimeout: time.Second})
	if !IsConnectError(err) {
		t.Errorf("Provide on a closed embedded server: %v", err)
	}
}
