package redisenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseKind(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Kind
		wantErr bool
	}{
		{"", KindAuto, false},
		{"auto", KindAuto, false},
		{"url", KindURL, false},
		{"spawn", KindSpawn, false},
		{"container", KindContainer, false},
		{"embedded", KindEmbedded, false},
		{"Spawn", "", true},
		{"docker", "", true},
		{" url", "", true},
	} {
		got, err := ParseKind(tc.in)
		if tc.wantErr {
			if !errors.Is(err, ErrBadKind) || !IsUsageError(err) {
				t.Errorf("ParseKind(%q) error = %v, want ErrBadKind", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		name, raw, password string
		wantNetwork         string
		wantAddr            string
		wantDB              int
		wantUser, wantPass  string
		wantTLS             bool
		wantURL             string // "" means raw
	}{
		{name: "redis", raw: "redis://localhost:6380/2", wantNetwork: "tcp", wantAddr: "localhost:6380", wantDB: 2},
		{name: "default port", raw: "redis://10.0.0.1", wantNetwork: "tcp", wantAddr: "10.0.0.1:6379"},
		{name: "rediss", raw: "rediss://cache.example:6390", wantNetwork: "tcp", wantAddr: "cache.example:6390", wantTLS: true},
		{name: "ipv6", raw: "redis://[::1]:7000", wantNetwork: "tcp", wantAddr: "[::1]:7000"},
		{name: "unix", raw: "unix:///run/redis.sock?db=3", wantNetwork: "unix", wantAddr: "/run/redis.sock", wantDB: 3},
		{name: "password in URL", raw: "redis://:s3cret@h:1", wantNetwork: "tcp", wantAddr: "h:1", wantPass: "s3cret"},
		{name: "user and password", raw: "redis://alice:s3cret@h:1", wantNetwork: "tcp", wantAddr: "h:1", wantUser: "alice", wantPass: "s3cret"},
		{name: "unix with password", raw: "unix://:s3cret@/run/redis.sock", wantNetwork: "unix", wantAddr: "/run/redis.sock", wantPass: "s3cret"},
		{
			name: "explicit overrides URL's", raw: "redis://alice:old@h:1/1", password: "n3w",
			wantNetwork: "tcp", wantAddr: "h:1", wantDB: 1, wantUser: "alice", wantPass: "n3w",
			wantURL: "redis://alice:n3w@h:1/1",
		},
		{
			name: "explicit added", raw: "redis://h:1", password: "p@ss word",
			wantNetwork: "tcp", wantAddr: "h:1", wantPass: "p@ss word",
			wantURL: "redis://:p%40ss%20word@h:1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro, full, err := parseURL(tc.raw, tc.password)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			if ro.Network != tc.wantNetwork || ro.Addr != tc.wantAddr || ro.DB != tc.wantDB ||
				ro.Username != tc.wantUser || ro.Password != tc.wantPass || (ro.TLSConfig != nil) != tc.wantTLS {
				t.Errorf("got network=%q addr=%q db=%d user=%q pass=%q tls=%v",
					ro.Network, ro.Addr, ro.DB, ro.Username, ro.Password, ro.TLSConfig != nil)
			}
			want := tc.wantURL
			if want == "" {
				want = tc.raw
			}
			if full != want {
				t.Errorf("full URL = %q, want %q", full, want)
			}
			// The full URL round-trips through go-redis to the same password.
			if ro2, _, err := parseURL(full, ""); err != nil || ro2.Password != tc.wantPass {
				t.Errorf("re-parse of full URL: password %q, %v", ro2.Password, err)
			}
		})
	}
}

func TestParseURLBad(t *testing.T) {
	const secret = "hunter2"
	for _, raw := range []string{
		"",
		"localhost:6379",
		"http://localhost:6379",
		"tcp://:" + secret + "@localhost:6379",
		"redis://:" + secret + "@h:1/notadb",
		"redis://:" + secret + "@h:1/1/2",
		"redis://:" + secret + "@h:1/?password=" + secret,
		"redis://:" + secret + "@h:1/?dial_timeout=forever",
		"redis://:" + secret + "%zz@h:1",
		"redis://:" + secret + "@h:port" + secret,
		"redis://:" + secret + "@h:1\n",
		"unix://:" + secret + "@",
		"redis:" + secret + "@h",
	} {
		_, _, err := parseURL(raw, "")
		if !errors.Is(err, ErrBadURL) || !IsUsageError(err) || IsConnectError(err) {
			t.Errorf("parseURL(%q) error = %v, want ErrBadURL", raw, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, "\n") {
			t.Errorf("parseURL(%q) error %q shows the password or spans lines", raw, msg)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://user:pass@localhost:6379", "redis://user:xxxxx@localhost:6379"},
		{"redis://:pass@localhost:6379/3", "redis://:xxxxx@localhost:6379/3"},
		{"rediss://default:p%40ss%2Fw@host:6380", "rediss://default:xxxxx@host:6380"},
		{"redis://user@localhost", "redis://user@localhost"},
		{"redis://user:@localhost", "redis://user:xxxxx@localhost"},
		{"unix://:pass@/run/redis.sock?db=1", "unix://:xxxxx@/run/redis.sock?db=1"},
		{"unix:///run/redis.sock?db=1&password=pass", "unix:///run/redis.sock?db=1&password=xxxxx"},
		{"redis://h/?Password=pass&dial_timeout=3s&auth_token=pass", "redis://h/?Password=xxxxx&dial_timeout=3s&auth_token=xxxxx"},
		{"redis://h/?pass%77ord=pass", "redis://h/?pass%77ord=xxxxx"},
		{"redis://h/?%zz=pass", "redis://h/?%zz=xxxxx"},
		{"redis://:pass@h/#pass", "redis://:xxxxx@h/"},
		{"redis://:p@ss@h", "redis://:xxxxx@h"},
		{"redis://:pass%zz@h", unparsableURL},
		{"redis:pass@h", unparsableURL},
		{"localhost:pass", unparsableURL},
		{"redis://:pass@h:1\n", unparsableURL},
		{"", ""},
	} {
		got := Redact(tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "pass") && !strings.Contains(tc.in, "user:pass") && !strings.Contains(got, "password=") &&
			!strings.Contains(got, "Password=") && !strings.Contains(got, "pass%77ord") {
			t.Errorf("Redact(%q) = %q still shows the password", tc.in, got)
		}
	}
}

func TestServerRedacted(t *testing.T) {
	s := &Server{Kind: KindURL, URL: "redis://bob:s3cret@h:1", Version: "7.2.4"}
	if got := s.Redacted(); got != "redis://bob:xxxxx@h:1" {
		t.Errorf("Redacted() = %q", got)
	}
	if got := s.String(); strings.Contains(got, "s3cret") || !strings.Contains(got, "7.2.4") {
		t.Errorf("String() = %q", got)
	}
}

func TestOptionsURLAndPassword(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name             string
		opts             Options
		wantURL, wantPwd string
	}{
		{"nothing", Options{Getenv: env(nil)}, "", ""},
		{"env", Options{Getenv: env(map[string]string{EnvURL: " redis://e:1 \n", EnvPassword: "ep"})}, "redis://e:1", "ep"},
		{"option wins", Options{URL: "redis://o:1", Password: "op", Getenv: env(map[string]string{EnvURL: "redis://e:1", EnvPassword: "ep"})}, "redis://o:1", "op"},
	} {
		o := tc.opts.withDefaults()
		if got := o.url(); got != tc.wantURL {
			t.Errorf("%s: url() = %q, want %q", tc.name, got, tc.wantURL)
		}
		if got := o.password(); got != tc.wantPwd {
			t.Errorf("%s: password() = %q, want %q", tc.name, got, tc.wantPwd)
		}
	}
}

func TestProvideUsageErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	noenv := func(string) string { return "" }
	for _, tc := range []struct {
		name string
		opts Options
		want error
	}{
		{"bad scheme", Options{URL: "http://:pw@h:1", Getenv: noenv}, ErrBadURL},
		{"bad env URL", Options{Getenv: func(k string) string {
			if k == EnvURL {
				return "memcached://h:1"
			}
			return ""
		}}, ErrBadURL},
		{"bad kind", Options{Force: "docker", Getenv: noenv}, ErrBadKind},
		{"forced url without one", Options{Force: KindURL, Getenv: noenv}, ErrUnavailable},
	} {
		s, err := Provide(ctx, tc.opts)
		if s != nil {
			_ = s.Close()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Provide error = %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: error %q shows the password", tc.name, err)
		}
	}
}
