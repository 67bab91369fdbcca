package impltest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
)

// RunTLS checks that a backend connects to a rediss:// URL with the TLS
// settings of impl.ConnConfig.TLS — a CA, a server name, a client
// certificate, no verification — on a redis-server of the test's own that
// speaks TLS (redistest.SpawnTLS), runs operations over it, and reports
// impl.SettingTLS; that a certificate that does not verify is refused;
// and that TLS settings for a redis:// URL are refused
// (impl.ErrTLSNeedsRediss) before any connection.
func RunTLS(t *testing.T, open impl.Opener) {
	t.Helper()
	plain := redistest.SpawnTLS(t, false)
	mutual := redistest.SpawnTLS(t, true)
	for _, tc := range []struct {
		name    string
		srv     *redistest.TLSServer
		files   func(s *redistest.TLSServer) redisenv.TLSFiles
		setting string // impl.SettingTLS; "" when Open must fail
	}{
		{"CA", plain, func(s *redistest.TLSServer) redisenv.TLSFiles { return redisenv.TLSFiles{CA: s.CA} }, "on"},
		{"server name", plain, func(s *redistest.TLSServer) redisenv.TLSFiles {
			return redisenv.TLSFiles{CA: s.CA, ServerName: redistest.TLSServerName}
		}, "on"},
		{"no verification", plain, func(*redistest.TLSServer) redisenv.TLSFiles { return redisenv.TLSFiles{Insecure: true} }, "on (no verification)"},
		{"client certificate", mutual, func(s *redistest.TLSServer) redisenv.TLSFiles {
			return redisenv.TLSFiles{CA: s.CA, Cert: s.Cert, Key: s.Key}
		}, "on + client certificate"},
		{"another CA", plain, func(s *redistest.TLSServer) redisenv.TLSFiles { return redisenv.TLSFiles{CA: s.OtherCA} }, ""},
		{"wrong server name", plain, func(s *redistest.TLSServer) redisenv.TLSFiles {
			return redisenv.TLSFiles{CA: s.CA, ServerName: "elsewhere.example"}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.files(tc.srv).Config()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := open(ctx, impl.ConnConfig{URL: tc.srv.URL, TLS: cfg, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
			if tc.setting == "" {
				if err == nil {
					b.Close()
					t.Fatal("connected with a certificate that does not verify")
				}
				if !strings.Contains(err.Error(), "certificate") {
					t.Errorf("error %v does not say the certificate failed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer b.Close()
			if got := b.Settings()[impl.SettingTLS]; got != tc.setting {
				t.Errorf("Settings()[%q] = %q, want %q", impl.SettingTLS, got, tc.setting)
			}
			sb, ok := b.(impl.StockBackend)
			if !ok {
				t.Fatalf("%s is not a StockBackend", b.Name())
			}
			ks := impl.MustKeyspace("pb:test:tls:" + b.Name() + ":")
			st, err := sb.Stock("lua", impl.StockOptions{Keys: ks})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Set(ctx, "item", 3); err != nil {
				t.Fatalf("Set over TLS: %v", err)
			}
			if _, err := st.Deduct(ctx, "item", 2); err != nil {
				t.Fatalf("Deduct over TLS: %v", err)
			}
			got, err := tc.srv.Plain.Admin().Get(ctx, impl.StockKey(ks, "item")).Int64()
			if err != nil || got != 1 {
				t.Errorf("stock read on the plain port: %d, %v; want 1", got, err)
			}
			tc.srv.Plain.Admin().Del(ctx, impl.StockKey(ks, "item"))
		})
	}
	t.Run("redis:// URL", func(t *testing.T) {
		cfg, _ := redisenv.TLSFiles{Insecure: true}.Config()
		b, err := open(context.Background(), impl.ConnConfig{URL: plain.Plain.URL, TLS: cfg})
		if err == nil {
			b.Close()
		}
		if !errors.Is(err, impl.ErrTLSNeedsRediss) {
			t.Errorf("Open(redis:// with TLS settings): %v, want ErrTLSNeedsRediss", err)
		}
	})
}
