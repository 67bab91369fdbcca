package redisenv_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
)

// TestProvideTLS connects to a spawned redis-server's TLS port with the
// settings of --tls-ca, --tls-cert/--tls-key, --tls-server-name and
// --tls-insecure: what verifies connects (and the admin client works),
// what does not fails with ErrTLS and a message that says TLS.
func TestProvideTLS(t *testing.T) {
	t.Parallel()
	plain := redistest.SpawnTLS(t, false)
	mutual := redistest.SpawnTLS(t, true)
	for _, tc := range []struct {
		name     string
		srv      *redistest.TLSServer
		files    func(s *redistest.TLSServer) redisenv.TLSFiles
		wantErr  string // "" when it must connect
		wantName string // Server.TLS.ServerName
	}{
		{"the test's CA", plain, func(s *redistest.TLSServer) redisenv.TLSFiles { return redisenv.TLSFiles{CA: s.CA} }, "", "127.0.0.1"},
		{"a server name the certificate carries", plain, func(s *redistest.TLSServer) redisenv.TLSFiles {
			return redisenv.TLSFiles{CA: s.CA, ServerName: redistest.TLSServerName}
		}, "", redistest.TLSServerName},
		{"a server name it does not carry", plain, func(s *redistest.TLSServer) redisenv.TLSFiles {
			return redisenv.TLSFiles{CA: s.CA, ServerName: "elsewhere.example"}
		}, "certificate is valid for", ""},
		{"another CA", plain, func(s *redistest.TLSServer) redisenv.TLSFiles { return redisenv.TLSFiles{CA: s.OtherCA} }, "certificate signed by unknown authority", ""},
		{"no verification", plain, func(s *redistest.TLSServer) redisenv.TLSFiles { return redisenv.TLSFiles{Insecure: true} }, "", "127.0.0.1"},
		{"client certificate required and given", mutual, func(s *redistest.TLSServer) redisenv.TLSFiles {
			return redisenv.TLSFiles{CA: s.CA, Cert: s.Cert, Key: s.Key}
		}, "", "127.0.0.1"},
		{"client certificate required, none given", mutual, func(s *redistest.TLSServer) redisenv.TLSFiles { return redisenv.TLSFiles{CA: s.CA} }, "TLS", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := tc.files(tc.srv).Config()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			s, err := redisenv.Provide(ctx, redisenv.Options{URL: tc.srv.URL, TLS: cfg, DialTimeout: 5 * time.Second, Getenv: func(string) string { return "" }})
			if tc.wantErr != "" {
				if s != nil {
					s.Close()
				}
				if !errors.Is(err, redisenv.ErrTLS) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "TLS") {
					t.Fatalf("error %v, want ErrTLS saying %q", err, tc.wantErr)
				}
				if took := time.Since(start); took > 20*time.Second { // a hang guard
					t.Errorf("failed after %v", took)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.TLS == nil || s.TLS.ServerName != tc.wantName {
				t.Errorf("Server.TLS %+v, want server name %q", s.TLS, tc.wantName)
			}
			if err := s.Admin().Set(ctx, "pb:test:tls:"+t.Name(), "1", time.Minute).Err(); err != nil {
				t.Errorf("admin client over TLS: %v", err)
			}
		})
	}
}

// TestTLSSettingsRefused: TLS settings for a server that is not a
// rediss:// URL, and files that cannot be used, are usage errors that
// say what is wrong.
func TestTLSSettingsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files redisenv.TLSFiles
		want  string
	}{
		{"missing CA file", redisenv.TLSFiles{CA: filepath.Join(dir, "nope.pem")}, "CA file: open "},
		{"CA file without a certificate", redisenv.TLSFiles{CA: notPEM}, "holds no PEM certificate"},
		{"certificate without key", redisenv.TLSFiles{Cert: notPEM}, "needs both its certificate and its key"},
		{"unreadable key pair", redisenv.TLSFiles{Cert: notPEM, Key: notPEM}, "client certificate " + notPEM},
	} {
		_, err := tc.files.Config()
		if !errors.Is(err, redisenv.ErrBadTLS) || !redisenv.IsUsageError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrBadTLS saying %q", tc.name, err, tc.want)
		}
	}
	cfg, err := redisenv.TLSFiles{Insecure: true}.Config()
	if err != nil || cfg == nil {
		t.Fatalf("insecure: %v", err)
	}
	if c, err := (redisenv.TLSFiles{}).Config(); c != nil || err != nil {
		t.Errorf("no settings: %v, %v; want nil, nil", c, err)
	}
	for _, tc := range []struct {
		name string
		opts redisenv.Options
		want string
	}{
		{"redis:// URL", redisenv.Options{URL: "redis://:hunter2@127.0.0.1:1"}, "need a rediss:// URL (not redis://)"},
		{"unix socket", redisenv.Options{URL: "unix:///tmp/nope.sock"}, "need a rediss:// URL (not unix://)"},
		{"spawned server", redisenv.Options{Force: redisenv.KindSpawn}, "the server is of kind spawn"},
		{"no URL", redisenv.Options{}, "no Redis URL is given"},
	} {
		o := tc.opts
		o.TLS, o.Getenv = cfg, func(string) string { return "" }
		s, err := redisenv.Provide(context.Background(), o)
		if s != nil {
			s.Close()
		}
		if !errors.Is(err, redisenv.ErrBadTLS) || !redisenv.IsUsageError(err) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %v, want ErrBadTLS saying %q", tc.name, err, tc.want)
		}
	}
}
