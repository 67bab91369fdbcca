package proxy

import (
	"errors"
	"strings"
	"testing"

	"github.com/paybench/paybench/bench/redisenv"
)

func TestRewriteURL(t *testing.T) {
	const addr = "127.0.0.1:40001"
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr error // nil: success
	}{
		{name: "plain", raw: "redis://localhost:6379", want: "redis://127.0.0.1:40001"},
		{name: "no port", raw: "redis://localhost", want: "redis://127.0.0.1:40001"},
		{name: "password kept", raw: "redis://:s3cret@db.example:6379", want: "redis://:s3cret@127.0.0.1:40001"},
		{name: "user and password kept", raw: "redis://app:s3cret@db.example:6379/", want: "redis://app:s3cret@127.0.0.1:40001/"},
		{name: "db kept", raw: "redis://db.example:6379/3", want: "redis://127.0.0.1:40001/3"},
		{name: "query kept", raw: "redis://:pw@db.example:6379/2?dial_timeout=3s&protocol=3", want: "redis://:pw@127.0.0.1:40001/2?dial_timeout=3s&protocol=3"},
		{name: "escaped password kept", raw: "redis://:p%40ss%2Fw@db.example:6379/1", want: "redis://:p%40ss%2Fw@127.0.0.1:40001/1"},
		{name: "rediss kept", raw: "rediss://:pw@db.example:6380/0?skip_verify=true", want: "rediss://:pw@127.0.0.1:40001/0?skip_verify=true"},
		{name: "ipv6 upstream", raw: "redis://[::1]:6379/4", want: "redis://127.0.0.1:40001/4"},
		{name: "unix refused", raw: "unix:///run/redis.sock?db=1", wantErr: ErrNeedsTCP},
		{name: "unix with password refused", raw: "unix://:s3cret@/run/redis.sock", wantErr: ErrNeedsTCP},
		{name: "http refused", raw: "http://db.example:6379", wantErr: redisenv.ErrBadURL},
		{name: "no scheme refused", raw: "db.example:6379", wantErr: redisenv.ErrBadURL},
		{name: "opaque refused", raw: "redis:db.example:6379", wantErr: redisenv.ErrBadURL},
		{name: "no host refused", raw: "redis:///3", wantErr: redisenv.ErrBadURL},
		{name: "unparsable refused", raw: "redis://:s3cret%zz@db.example:6379", wantErr: redisenv.ErrBadURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RewriteURL(tt.raw, addr)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("RewriteURL(%q) = %q, %v; want an error wrapping %v", tt.raw, got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RewriteURL(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("RewriteURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestRewriteURLBadAddr(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1", "127.0.0.1:", "[::1"} {
		if got, err := RewriteURL("redis://localhost:6379", addr); err == nil {
			t.Errorf("RewriteURL(_, %q) = %q, want an error", addr, got)
		}
	}
}
