package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/reports/result"
)

// TestTLSRunOversell: `paybench run oversell` over TLS passes on both
// backends — at its default size with --tls-ca against a server that
// verifies by its CA; smaller with a server name, a client certificate
// against a server that requires one, and through the fault proxy — and
// the document says both clients used TLS.
func TestTLSRunOversell(t *testing.T) {
	plain := redistest.SpawnTLS(t, false)
	mutual := redistest.SpawnTLS(t, true)
	for _, tc := range []struct {
		name string
		url  string
		args []string
		want string // the clients' tls setting
	}{
		{"CA", plain.URL, []string{"--tls-ca", plain.CA}, "on"},
		{"CA and server name", plain.URL, []string{"--tls-ca", plain.CA, "--tls-server-name", redistest.TLSServerName, "--stock", "100", "--buyers", "300"}, "on"},
		{"client certificate", mutual.URL, []string{"--tls-ca", mutual.CA, "--tls-cert", mutual.Cert, "--tls-key", mutual.Key, "--stock", "100", "--buyers", "300"}, "on + client certificate"},
		// The clients under test go through the fault proxy's address and
		// still verify the server's name.
		{"server name through the fault proxy", plain.URL, []string{"--tls-ca", plain.CA, "--tls-server-name", redistest.TLSServerName, "--fault", "latency:2ms@50ms+300ms", "--stock", "100", "--buyers", "300"}, "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			args := append([]string{"run", "oversell", "--redis-url", tc.url, "--backend", "goredis,rueidis", "--strategy", "lua", "--json", out}, tc.args...)
			code, stdout, stderr := runCLI(t, context.Background(), args...)
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			doc := readDoc(t, out)
			backends := map[string]bool{}
			for _, c := range doc.Cells {
				if c.Verdict != result.Pass {
					t.Errorf("%s/%s: %s", c.Backend, c.Strategy, c.Verdict)
				}
				backends[c.Backend] = true
			}
			if !backends["goredis"] || !backends["rueidis"] {
				t.Errorf("cells ran on %v, want both backends", backends)
			}
			for _, b := range []string{"goredis", "rueidis"} {
				if got := doc.Fairness.Clients[b]["tls"]; got != tc.want {
					t.Errorf("%s's tls setting %q, want %q", b, got, tc.want)
				}
			}
			if !strings.HasPrefix(doc.Fairness.Server.Address, "rediss://") {
				t.Errorf("server address %q is not the rediss:// one", doc.Fairness.Server.Address)
			}
		})
	}
}

// TestTLSFailures: TLS that cannot work fails with the exit code of its
// cause and a one-line message that says TLS — a rediss:// URL to a plain
// server within seconds — and TLS settings that cannot be used are usage
// errors.
func TestTLSFailures(t *testing.T) {
	srv := redistest.SpawnTLS(t, true)
	rediss := strings.Replace(srv.Plain.URL, "redis://", "rediss://", 1)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"rediss:// to a plain server", []string{"--redis-url", rediss, "--tls-ca", srv.CA}, exitRedis, []string{"TLS", "(is it a plain redis:// server?)"}},
		{"a CA that did not sign the server's certificate", []string{"--redis-url", srv.URL, "--tls-ca", srv.OtherCA}, exitRedis, []string{"TLS handshake", "certificate signed by unknown authority"}},
		{"no client certificate for a server that requires one", []string{"--redis-url", srv.URL, "--tls-ca", srv.CA}, exitRedis, []string{"TLS", "requires a client certificate", "--tls-cert"}},
		{"TLS settings for a redis:// URL", []string{"--redis-url", srv.Plain.URL, "--tls-ca", srv.CA}, exitUsage, []string{"need a rediss:// URL"}},
		{"TLS settings for a spawned server", []string{"--redis", "spawn", "--tls-insecure"}, exitUsage, []string{"TLS settings apply to a rediss:// URL"}},
		{"missing CA file", []string{"--redis-url", srv.URL, "--tls-ca", filepath.Join(t.TempDir(), "nope.pem")}, exitUsage, []string{"--tls-*", "CA file"}},
		{"certificate without key", []string{"--redis-url", srv.URL, "--tls-cert", srv.Cert}, exitUsage, []string{"needs both its certificate and its key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, _, stderr := runCLI(t, context.Background(), append([]string{"load", "stock.deduct", "--duration", "1s"}, tc.args...)...)
			took := time.Since(start)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			assertOneLine(t, stderr)
			if took > 30*time.Second { // a hang guard, not a speed check
				t.Errorf("took %v", took)
			}
			t.Logf("%v: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))
		})
	}
}
