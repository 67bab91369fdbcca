package redisenv

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/alicebob/miniredis/v2"
)

// provideEmbedded starts an in-process miniredis on a loopback port and
// writes EmbeddedWarning to o.Warn.
func provideEmbedded(ctx context.Context, o Options) (*Server, error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("embedded: start miniredis: %w", err)
	}
	ro, full, err := parseURL("redis://"+m.Addr(), "")
	if err != nil {
		m.Close()
		return nil, err
	}
	s, err := connect(ctx, KindEmbedded, full, ro, o, func() error { m.Close(); return nil })
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if s.Version == "" {
		s.Version = "miniredis " + miniredisVersion()
	}
	if s.Mode == "" {
		s.Mode = "standalone"
	}
	fmt.Fprintln(o.Warn, EmbeddedWarning)
	return s, nil
}

// miniredisVersion returns the miniredis module version built in, or
// "(unknown version)".
func miniredisVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/alicebob/miniredis/v2" {
				return d.Version
			}
		}
	}
	return "(unknown version)"
}
