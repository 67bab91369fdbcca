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
		s.Version = miniredisVersion()
	}
	if s.Mode == "" {
		s.Mode = "standalone"
	}
	fmt.Fprintln(o.Warn, EmbeddedWarning)
	return s, nil
}

// miniredisVersion returns "miniredis " and the module version built in,
// or just "miniredis" when the binary does not say (test binaries).
func miniredisVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/alicebob/miniredis/v2" && d.Version != "" {
				return "miniredis " + d.Version
			}
		}
	}
	return "miniredis"
}
