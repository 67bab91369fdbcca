package impltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
)

// RunClientSettings checks that a backend applies the client settings of
// impl.ConnConfig — Retries, ReadTimeout, DialTimeout, and the same
// settings in the URL's query — and that its Settings tell the truth
// about them:
//
//   - Settings: each choice, and the precedence ConnConfig over URL over
//     default, shows under the impl.Setting* keys; invalid values are
//     refused before any connection;
//   - Retries: through a proxy that loses replies (the server ran the
//     command; the client sees its connection closed without a reply), a
//     write (an INCR script, a stock Restore) and a read (a stock Get) are
//     re-sent exactly as the backend's Settings say — as many times, and
//     writes only when impl.SettingRetriedCommands says so — and a re-sent
//     write applies once per send;
//   - ReadTimeout: on a redis-server of the test's own whose writes are
//     paused (CLIENT PAUSE WRITE, 10 s), a write fails with a time-out
//     rather than waiting out the pause, no sooner than the read time-out
//     times the attempts the retry setting allows.
//
// The suite holds no backend's name: what each backend retries is read
// from its own Settings.
func RunClientSettings(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	t.Run("Settings", func(t *testing.T) { testClientSettings(t, env, open) })
	t.Run("Invalid", func(t *testing.T) { testClientSettingsInvalid(t, open) })
	t.Run("Retries", func(t *testing.T) { testClientRetries(t, env, open) })
	t.Run("ReadTimeout", func(t *testing.T) { testClientReadTimeout(t, open) })
}

// withQuery returns rawURL with the query parameters of query (a
// url.Values encoding) added.
func withQuery(t *testing.T, rawURL, query string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse the server's URL: %v", err)
	}
	add, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("parse query %q: %v", query, err)
	}
	q := u.Query()
	for k, v := range add {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func testClientSettings(t *testing.T, env Env, open impl.Opener) {
	const library = "library"
	for _, tc := range []struct {
		name    string
		retries string
		read    time.Duration
		dial    time.Duration
		query   string
		// want
		wantRetries, wantFrom string
		wantRead, wantDial    string
	}{
		{name: "defaults", wantRetries: "0", wantFrom: impl.RetriesFromDefault, wantRead: "3s", wantDial: "3s"},
		{name: "retries 0", retries: "0", wantRetries: "0", wantFrom: impl.RetriesFromConfig, wantRead: "3s", wantDial: "3s"},
		{name: "retries library", retries: "library", wantRetries: library, wantFrom: impl.RetriesFromConfig, wantRead: "3s", wantDial: "3s"},
		{name: "retries 2", retries: "2", wantRetries: "2", wantFrom: impl.RetriesFromConfig, wantRead: "3s", wantDial: "3s"},
		{name: "URL max_retries", query: "max_retries=2", wantRetries: "2", wantFrom: impl.RetriesFromURL, wantRead: "3s", wantDial: "3s"},
		{name: "URL max_retries=0", query: "max_retries=0", wantRetries: "0", wantFrom: impl.RetriesFromURL, wantRead: "3s", wantDial: "3s"},
		{name: "URL max_retries=-1", query: "max_retries=-1", wantRetries: "0", wantFrom: impl.RetriesFromURL, wantRead: "3s", wantDial: "3s"},
		{name: "0 over URL", retries: "0", query: "max_retries=2", wantRetries: "0", wantFrom: impl.RetriesFromConfig, wantRead: "3s", wantDial: "3s"},
		{name: "library over URL", retries: "library", query: "max_retries=2", wantRetries: library, wantFrom: impl.RetriesFromConfig, wantRead: "3s", wantDial: "3s"},
		{name: "N over URL", retries: "1", query: "max_retries=2", wantRetries: "1", wantFrom: impl.RetriesFromConfig, wantRead: "3s", wantDial: "3s"},
		{name: "time-outs", read: 250 * time.Millisecond, dial: 1500 * time.Millisecond, wantRetries: "0", wantFrom: impl.RetriesFromDefault, wantRead: "250ms", wantDial: "1.5s"},
		{name: "URL time-outs", query: "read_timeout=1500ms&dial_timeout=2s", wantRetries: "0", wantFrom: impl.RetriesFromDefault, wantRead: "1.5s", wantDial: "2s"},
		{name: "time-outs over URL", read: 250 * time.Millisecond, dial: time.Second, query: "read_timeout=2s&write_timeout=2s&dial_timeout=2s",
			wantRetries: "0", wantFrom: impl.RetriesFromDefault, wantRead: "250ms", wantDial: "1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := env.Conn
			cfg.URL = withQuery(t, cfg.URL, tc.query)
			cfg.Retries, cfg.ReadTimeout, cfg.DialTimeout = tc.retries, tc.read, tc.dial
			b, err := open(testContext(t), cfg)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer func() { _ = b.Close() }()
			s := b.Settings()
			pol := retryPolicyOf(t, s)
			got := s[impl.SettingRetries]
			if tc.wantRetries == library {
				if !pol.library {
					t.Errorf("Settings()[%s] = %q, want library (N)", impl.SettingRetries, got)
				}
			} else if got != tc.wantRetries {
				t.Errorf("Settings()[%s] = %q, want %q", impl.SettingRetries, got, tc.wantRetries)
			}
			for _, w := range []struct{ key, want string }{
				{impl.SettingRetriesFrom, tc.wantFrom},
				{impl.SettingReadTimeout, tc.wantRead},
				{impl.SettingDialTimeout, tc.wantDial},
			} {
				if s[w.key] != w.want {
					t.Errorf("Settings()[%s] = %q, want %q", w.key, s[w.key], w.want)
				}
			}
			t.Logf("retries %q, retried_commands %q, read_timeout %s, dial_timeout %s",
				got, s[impl.SettingRetriedCommands], s[impl.SettingReadTimeout], s[impl.SettingDialTimeout])
		})
	}
}

func testClientSettingsInvalid(t *testing.T, open impl.Opener) {
	// Nothing listens on port 1: a validation that came after connecting
	// would report a connection error instead.
	const dead = "redis://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		cfg  impl.ConnConfig
	}{
		{"retries word", impl.ConnConfig{URL: dead, Retries: "always"}},
		{"retries negative", impl.ConnConfig{URL: dead, Retries: "-1"}},
		{"retries too many", impl.ConnConfig{URL: dead, Retries: strconv.Itoa(impl.MaxRetries + 1)}},
		{"URL max_retries", impl.ConnConfig{URL: dead + "?max_retries=lots"}},
		{"negative read time-out", impl.ConnConfig{URL: dead, ReadTimeout: -time.Second}},
		{"negative dial time-out", impl.ConnConfig{URL: dead, DialTimeout: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := open(testContext(t), tc.cfg)
			if err == nil {
				_ = b.Close()
				t.Fatalf("open: no error")
			}
			if !errors.Is(err, impl.ErrInvalidConnConfig) {
				t.Errorf("open: %v; want an error wrapping impl.ErrInvalidConnConfig", err)
			}
		})
	}
}

// retryPolicy is what a backend's Settings say it retries.
type retryPolicy struct {
	library   bool
	n         int  // retries after the first attempt
	unbounded bool // no count: until the context ends
	reads     bool // read-only commands are retried
	writes    bool // writes are retried too
}

// retries returns how many times a command that lost its reply is
// re-sent; unbounded: a large number.
func (p retryPolicy) retries(write bool) int {
	if write && !p.writes || !write && !p.reads {
		return 0
	}
	if p.unbounded {
		return 1 << 30
	}
	return p.n
}

// retryPolicyOf reads impl.SettingRetries and impl.SettingRetriedCommands,
// and checks that they agree.
func retryPolicyOf(t *testing.T, s map[string]string) retryPolicy {
	t.Helper()
	var p retryPolicy
	r := s[impl.SettingRetries]
	inner, lib := strings.CutPrefix(r, "library (")
	if lib {
		var ok bool
		if inner, ok = strings.CutSuffix(inner, ")"); !ok {
			t.Fatalf("Settings()[%s] = %q: want library (N) or library (unbounded)", impl.SettingRetries, r)
		}
		p.library = true
		r = inner
	}
	if lib && r == "unbounded" {
		p.unbounded = true
	} else {
		n, err := strconv.Atoi(r)
		if err != nil || n < 0 || n > impl.MaxRetries || lib && n == 0 {
			t.Fatalf("Settings()[%s] = %q: want a number of retries, library (N) or library (unbounded)", impl.SettingRetries, s[impl.SettingRetries])
		}
		p.n = n
	}
	switch c := s[impl.SettingRetriedCommands]; c {
	case impl.RetriedNone:
	case impl.RetriedReadOnly:
		p.reads = true
	case impl.RetriedAll:
		p.reads, p.writes = true, true
	default:
		t.Fatalf("Settings()[%s] = %q, want one of %q, %q, %q", impl.SettingRetriedCommands, c,
			impl.RetriedNone, impl.RetriedReadOnly, impl.RetriedAll)
	}
	if none := p.n == 0 && !p.unbounded; none != !p.reads {
		t.Fatalf("Settings() disagree: %s = %q but %s = %q", impl.SettingRetries, s[impl.SettingRetries],
			impl.SettingRetriedCommands, s[impl.SettingRetriedCommands])
	}
	return p
}

// proxied returns cfg with its URL pointed at a new replyDropper in front
// of cfg's server. It skips the test when the URL is not redis:// (TLS and
// unix sockets cannot be relayed by the proxy).
func proxied(t *testing.T, cfg impl.ConnConfig, query string) (impl.ConnConfig, *replyDropper) {
	t.Helper()
	u, err := url.Parse(withQuery(t, cfg.URL, query))
	if err != nil {
		t.Fatalf("parse the server's URL: %v", err)
	}
	if u.Scheme != "redis" {
		t.Skipf("relays plain TCP only, not %s://", u.Scheme)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "6379")
	}
	p := newReplyDropper(t, target)
	u.Host = p.Addr()
	cfg.URL = u.String()
	return cfg, p
}

func testClientRetries(t *testing.T, env Env, open impl.Opener) {
	for _, tc := range []struct {
		name, retries, query string
	}{
		{name: "0", retries: "0"},
		{name: "library", retries: "library"},
		{name: "2", retries: "2"},
		{name: "URL max_retries=1", query: "max_retries=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, proxy := proxied(t, env.Conn, tc.query)
			cfg.Retries = tc.retries
			ctx := testContext(t)
			b, err := open(ctx, cfg)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer func() { _ = b.Close() }()
			pol := retryPolicyOf(t, b.Settings())
			t.Logf("%s = %q, %s = %q", impl.SettingRetries, b.Settings()[impl.SettingRetries],
				impl.SettingRetriedCommands, b.Settings()[impl.SettingRetriedCommands])
			ks := env.Keyspace(t)
			st, err := b.(impl.StockBackend).Stock(impl.StockNaive, impl.StockOptions{Keys: ks})
			if err != nil {
				t.Fatalf("Stock(naive): %v", err)
			}
			sb, ok := b.(impl.ScriptBackend)
			if !ok {
				t.Fatalf("%T does not implement impl.ScriptBackend", b)
			}
			incr := sb.Script("return redis.call('INCR', KEYS[1])")
			// Load the script, so that EVALSHA runs it at once.
			if _, err := incr.Run(ctx, []string{ks.Key("warm-up")}); err != nil {
				t.Fatalf("warm-up: %v", err)
			}

			for _, op := range []struct {
				name  string
				write bool
				// do runs the operation once on item, whose key is key.
				do func(ctx context.Context, item, key string) error
			}{
				{name: "script INCR", write: true, do: func(ctx context.Context, item, key string) error {
					_, err := incr.Run(ctx, []string{key})
					return err
				}},
				{name: "Restore", write: true, do: func(ctx context.Context, item, key string) error {
					_, err := st.Restore(ctx, item, 1)
					return err
				}},
				{name: "Get", write: false, do: func(ctx context.Context, item, key string) error {
					n, err := st.Get(ctx, item)
					if err == nil && n != 7 {
						return fmt.Errorf("Get = %d, want 7", n)
					}
					return err
				}},
			} {
				retries := pol.retries(op.write)
				drops := []int{1}
				switch {
				case pol.unbounded && retries > 0:
					drops = append(drops, 3)
				case retries > 1:
					drops = append(drops, retries, retries+1)
				case retries == 1:
					drops = append(drops, 2)
				}
				for _, d := range drops {
					t.Run(fmt.Sprintf("%s/%d lost", op.name, d), func(t *testing.T) {
						ctx := testContext(t)
						item := fmt.Sprintf("%s-%d", strings.ReplaceAll(op.name, " ", "-"), d)
						key := impl.StockKey(ks, item)
						seed := 7 // what Get must read
						if op.write {
							seed = 0 // a counter of sends
						}
						if err := env.Admin.Set(ctx, key, seed, 0).Err(); err != nil {
							t.Fatalf("SET: %v", err)
						}
						wantOK := d <= retries
						wantRan := d + 1
						if !wantOK {
							wantRan = retries + 1
						}
						proxy.Arm(key, d)
						err := op.do(ctx, item, key)
						ran := proxy.Ran()
						proxy.Arm("", 0)
						allowed := strconv.Itoa(retries)
						if pol.unbounded && retries > 0 {
							allowed = "unbounded"
						}
						t.Logf("%d replies lost, %s retries allowed: ran %d times, %v", d, allowed, ran, err)
						if wantOK && err != nil {
							t.Errorf("failed after %d lost replies with %d retries allowed: %v", d, retries, err)
						}
						if !wantOK {
							if err == nil {
								t.Errorf("succeeded after %d lost replies with %d retries allowed", d, retries)
							} else if c := b.Classify(err); c != impl.ClassConnection {
								t.Errorf("Classify(%v) = %q, want %q", err, c, impl.ClassConnection)
							}
						}
						if ran != wantRan {
							t.Errorf("the server ran it %d times, want %d (1 + retries)", ran, wantRan)
						}
						if op.write {
							// Every send applied: a re-sent write applies
							// again.
							v, err := env.Admin.Get(ctx, key).Int()
							if err != nil || v != wantRan {
								t.Errorf("the counter is %d (%v), want %d: one per send", v, err, wantRan)
							}
						}
					})
				}
			}
		})
	}
}

func testClientReadTimeout(t *testing.T, open impl.Opener) {
	srv := redistest.Spawn(t)
	admin := srv.Admin()
	const readTimeout = 200 * time.Millisecond
	for _, retries := range []string{"0", "library"} {
		t.Run("retries "+retries, func(t *testing.T) {
			ctx := testContext(t)
			b, err := open(ctx, impl.ConnConfig{URL: srv.URL, Password: srv.Password, ReadTimeout: readTimeout, Retries: retries})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer func() { _ = b.Close() }()
			if got := b.Settings()[impl.SettingReadTimeout]; got != readTimeout.String() {
				t.Errorf("Settings()[%s] = %q, want %q", impl.SettingReadTimeout, got, readTimeout)
			}
			attempts := 1 + retryPolicyOf(t, b.Settings()).retries(true)
			if attempts > 10 {
				t.Fatalf("%d attempts of a write: the 10 s pause would end first", attempts)
			}
			ks := impl.MustKeyspace("pb:test:timeout:" + randomHex(4) + ":")
			st, err := b.(impl.StockBackend).Stock(impl.StockNaive, impl.StockOptions{Keys: ks})
			if err != nil {
				t.Fatalf("Stock(naive): %v", err)
			}
			// The pause holds every write for 10 s; the test's context
			// lasts 30 s. An error therefore comes from the read
			// time-out, and no sooner than one per attempt.
			if err := admin.Do(ctx, "CLIENT", "PAUSE", "10000", "WRITE").Err(); err != nil {
				t.Fatalf("CLIENT PAUSE: %v", err)
			}
			unpause := func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
					t.Errorf("CLIENT UNPAUSE: %v", err)
				}
			}
			start := time.Now()
			_, err = st.Restore(ctx, "item", 1)
			elapsed := time.Since(start)
			unpause()
			t.Logf("%d attempt(s) of %v: %v after %v", attempts, readTimeout, err, elapsed)
			if err == nil {
				t.Fatalf("the write succeeded: it waited out the pause, not its read time-out")
			}
			if ctx.Err() != nil {
				t.Fatalf("the test's context ended first: %v", ctx.Err())
			}
			if c := b.Classify(err); c != impl.ClassTimeout {
				t.Errorf("Classify(%v) = %q, want %q", err, c, impl.ClassTimeout)
			}
			if least := time.Duration(attempts) * readTimeout; elapsed < least {
				t.Errorf("failed after %v, before %d attempt(s) of %v", elapsed, attempts, readTimeout)
			}
		})
	}
}
