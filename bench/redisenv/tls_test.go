package redisenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a TLS server configuration with a fresh self-signed
// certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "paybench test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// tlsPeer is a server that speaks only TLS: it completes the handshake
// (or fails it, when the client does not speak TLS) and hangs up.
func tlsPeer(cfg *tls.Config) func(net.Conn) {
	return func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_ = tls.Server(c, cfg).Handshake()
		_ = c.Close()
	}
}

// TestProvideTLSMismatch: a rediss:// URL to a server that does not answer
// TLS, and a redis:// URL to one that only speaks it, say so instead of
// timing out or calling the server "not Redis".
func TestProvideTLSMismatch(t *testing.T) {
	t.Parallel()
	// Long enough for a handshake on a loaded machine; the silent cases
	// wait it out.
	const dial = 2 * time.Second
	cfg := selfSigned(t)
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		want []string // in the message, after "TLS handshake with ADDR failed: " or the like
		max  time.Duration
	}{
		{"rediss to a plain redis-server", func(t *testing.T) string {
			needRedisServer(t)
			s, err := spawn(context.Background(), Options{Getenv: noenv, Warn: &strings.Builder{}}.withDefaults(), "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return strings.Replace(s.URL, "redis://", "rediss://:pw-1@", 1)
		}, []string{"TLS handshake with 127.0.0.1:", " failed: the server did not answer TLS", "(is it a plain redis:// server?)"}, 2 * dial},
		{"rediss to a peer that answers in plain text", func(t *testing.T) string { return "rediss://:pw-1@" + peer(t, httpPeer) },
			[]string{"failed: the server did not answer TLS (is it a plain redis:// server?)"}, dial},
		{"rediss to a silent peer", func(t *testing.T) string { return "rediss://:pw-1@" + peer(t, silentPeer) },
			[]string{"failed: the server did not answer TLS within 2s (is it a plain redis:// server?)"}, 2 * dial},
		{"rediss to an unknown certificate", func(t *testing.T) string { return "rediss://:pw-1@" + peer(t, tlsPeer(cfg)) },
			[]string{"failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"}, dial},
		{"redis to a TLS server", func(t *testing.T) string { return "redis://:pw-1@" + peer(t, tlsPeer(cfg)) },
			[]string{"connection to 127.0.0.1:", " without TLS failed: the server speaks TLS (use a rediss:// URL, not redis://)"}, 2 * dial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := tc.url(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			s, err := Provide(ctx, Options{URL: u, Password: "pw-1", Getenv: noenv, DialTimeout: dial})
			took := time.Since(start)
			if s != nil {
				_ = s.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, ErrTLS) || !IsConnectError(err) || IsUsageError(err) {
				t.Fatalf("error %v, want ErrTLS", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "pw-1") || strings.Contains(msg, "\n") {
				t.Errorf("error %q shows the password or spans lines", msg)
			}
			if took > tc.max+20*time.Second { // a hang guard, not a speed check
				t.Errorf("failed after %v: it must not wait past the dial time-out (%v)", took, tc.max)
			}
		})
	}
}

// TestProvideRedissToTLSPeerPasses checks that the handshake before the
// check does not refuse a TLS server it can verify: the failure is then
// the peer's, not TLS's.
func TestProvideRedissToTLSPeerPasses(t *testing.T) {
	t.Parallel()
	cfg := selfSigned(t)
	addr := peer(t, tlsPeer(cfg))
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, cfg.Certificates[0].Certificate[0]))
	ro, _, err := parseURL("rediss://"+addr, "")
	if err != nil {
		t.Fatal(err)
	}
	ro.TLSConfig.RootCAs = pool
	if err := dialOnce(context.Background(), ro, time.Second); err != nil {
		t.Errorf("handshake with a verified TLS server: %v", err)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
