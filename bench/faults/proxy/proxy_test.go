package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// accept loop, forwarder and latency writer must have ended after Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds each test's Redis calls and waits.
const testTimeout = 30 * time.Second

// setup spawns a redis-server of the test's own and starts a proxy to it,
// closed when the test ends. It returns the proxy and the server's URL
// rewritten to the proxy.
func setup(t *testing.T) (*Proxy, string) {
	t.Helper()
	_, p, url := setupServer(t)
	return p, url
}

// setupServer is setup that returns the server too.
func setupServer(t *testing.T) (*redisenv.Server, *Proxy, string) {
	t.Helper()
	srv := redistest.Spawn(t)
	ro, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatalf("parse server URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p, err := Start(ctx, ro.Addr)
	if err != nil {
		t.Fatalf("Start(%s): %v", ro.Addr, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	u, err := RewriteURL(srv.URL, p.Addr())
	if err != nil {
		t.Fatalf("RewriteURL: %v", err)
	}
	return srv, p, u
}

// goRedis returns a go-redis client on url with one connection that never
// retries (so a reset shows as the command's error), closed when the test
// ends.
func goRedis(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	opt.PoolSize = 1
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// eventually polls cond every 10 ms until it holds, failing the test with
// what when it does not within testTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping times one PING.
func ping(ctx context.Context, rdb redis.UniversalClient) (time.Duration, error) {
	start := time.Now()
	err := rdb.Ping(ctx).Err()
	return time.Since(start), err
}

// isReset reports whether err is what a client sees on a reset
// connection: ECONNRESET, EOF, or (a write racing the RST) EPIPE.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "connection reset")
}

func TestStartRefusesBadUpstream(t *testing.T) {
	// A port nothing listens on: listen, note the port, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name, upstream string
		wantErr        error // nil: any error
	}{
		{name: "no port", upstream: "127.0.0.1"},
		{name: "empty", upstream: ""},
		{name: "nothing listens", upstream: closed, wantErr: syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			p, err := Start(ctx, tt.upstream)
			if err == nil {
				p.Close()
				t.Fatalf("Start(%q) succeeded, want an error", tt.upstream)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Start(%q) = %v, want an error wrapping %v", tt.upstream, err, tt.wantErr)
			}
		})
	}
}

func TestPing(t *testing.T) {
	p, url := setup(t)
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:port", p.Addr())
	}
	rdb := goRedis(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING through the proxy: %v", err)
	}
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d after one client connected, want 1", n)
	}
	// A value much larger than one read (chunkSize) comes back whole.
	big := strings.Repeat("paybench", 1<<17) // 1 MiB
	if err := rdb.Set(ctx, "proxy:big", big, 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := rdb.Get(ctx, "proxy:big").Result(); err != nil || got != big {
		t.Fatalf("GET of 1 MiB: len %d, err %v; want the value set", len(got), err)
	}
	if err := rdb.Close(); err != nil {
		t.Fatalf("close client: %v", err)
	}
	eventually(t, "Conns() == 0 after the client closed", func() bool { return p.Conns() == 0 })
}

func TestLatency(t *testing.T) {
	p, url := setup(t)
	rdb := goRedis(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := ping(ctx, rdb); err != nil {
		t.Fatalf("PING: %v", err)
	}

	const lat = 200 * time.Millisecond
	steps := []struct {
		name    string
		latency time.Duration
		slow    bool // every PING takes at least lat; else the fastest of five is under it
	}{
		{name: "200ms added", latency: lat, slow: true},
		{name: "removed", latency: 0},
		{name: "added again", latency: lat, slow: true},
		{name: "negative removes", latency: -time.Second},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			p.SetLatency(st.latency)
			fastest := time.Duration(1<<63 - 1)
			for range 5 {
				d, err := ping(ctx, rdb)
				if err != nil {
					t.Fatalf("PING: %v", err)
				}
				if st.slow && d < lat {
					t.Errorf("PING took %v with latency %v set, want at least %v", d, st.latency, lat)
				}
				fastest = min(fastest, d)
			}
			if !st.slow && fastest >= lat {
				t.Errorf("fastest of five PINGs took %v with latency %v, want under %v", fastest, st.latency, lat)
			}
		})
	}
}

// TestLatencyKeepsOrder sends a pipeline of commands whose replies cross
// the latency queue in many chunks and checks every reply is in place.
func TestLatencyKeepsOrder(t *testing.T) {
	p, url := setup(t)
	rdb := goRedis(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	val := strings.Repeat("x", 10_000)
	if err := rdb.Set(ctx, "proxy:v", val, 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	p.SetLatency(20 * time.Millisecond)
	const n = 300
	pipe := rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range cmds {
		if i%2 == 0 {
			cmds[i] = pipe.Get(ctx, "proxy:v")
		} else {
			cmds[i] = pipe.Echo(ctx, i)
		}
	}
	start := time.Now()
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("pipeline took %v, want at least the latency", d)
	}
	for i, c := range cmds {
		want := val
		if i%2 == 1 {
			want = strconv.Itoa(i)
		}
		if got := c.Val(); got != want {
			t.Fatalf("reply %d = %.20q (len %d), want %.20q", i, got, len(got), want)
		}
	}
}

// TestResetAll resets go-redis clients' connections. A command in flight
// (a BLPOP the server holds) fails with a reset and the client's next
// command dials anew. An idle connection is reset too (counted), but
// go-redis never shows it: its pool checks an idle connection before
// handing it out (a non-blocking MSG_PEEK read sees the RST) and dials a
// new one, so the next command succeeds.
func TestResetAll(t *testing.T) {
	srv, p, url := setupServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if n := p.ResetAll(); n != 0 {
		t.Errorf("ResetAll() with no client = %d, want 0", n)
	}

	tests := []struct {
		name     string
		clients  int
		inFlight bool // each client has a BLPOP in flight when the reset comes
	}{
		{name: "one client in flight", clients: 1, inFlight: true},
		{name: "three clients in flight", clients: 3, inFlight: true},
		{name: "two idle clients", clients: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdbs := make([]redis.UniversalClient, tt.clients)
			for i := range rdbs {
				rdbs[i] = goRedis(t, url)
				if err := rdbs[i].Ping(ctx).Err(); err != nil {
					t.Fatalf("client %d PING: %v", i, err)
				}
			}
			eventually(t, "every client counted", func() bool { return p.Conns() == tt.clients })

			errs := make(chan error, tt.clients)
			if tt.inFlight {
				for i, rdb := range rdbs {
					key := fmt.Sprintf("proxy:reset:%s:%d", t.Name(), i)
					go func() { errs <- rdb.BLPop(ctx, 20*time.Second, key).Err() }()
				}
				eventually(t, "every BLPOP blocked on the server", func() bool {
					return blockedClients(ctx, srv) == tt.clients
				})
			}

			if n := p.ResetAll(); n != tt.clients {
				t.Errorf("ResetAll() = %d, want %d", n, tt.clients)
			}
			if n := p.Conns(); n != 0 {
				t.Errorf("Conns() = %d right after ResetAll, want 0", n)
			}
			if tt.inFlight {
				for range tt.clients {
					if err := <-errs; err == nil || !isReset(err) {
						t.Errorf("BLPOP in flight across ResetAll = %v, want a connection reset or EOF", err)
					}
				}
			}
			for i, rdb := range rdbs {
				if err := rdb.Ping(ctx).Err(); err != nil {
					t.Errorf("client %d: PING after ResetAll (go-redis reconnects): %v", i, err)
				}
			}
			eventually(t, "the clients counted again", func() bool { return p.Conns() == tt.clients })
			for _, rdb := range rdbs {
				_ = rdb.Close()
			}
			eventually(t, "Conns() == 0", func() bool { return p.Conns() == 0 })
		})
	}
}

// blockedClients returns INFO clients' blocked_clients, -1 when it cannot
// be read.
func blockedClients(ctx context.Context, srv *redisenv.Server) int {
	info, err := srv.Admin().Info(ctx, "clients").Result()
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "blocked_clients:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// TestResetAllIsRST checks the client sees an RST, not a FIN, on a raw
// connection that is idle when ResetAll runs.
func TestResetAllIsRST(t *testing.T) {
	p, _ := setup(t)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "the connection counted", func() bool { return p.Conns() == 1 })
	if n := p.ResetAll(); n != 1 {
		t.Fatalf("ResetAll() = %d, want 1", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after ResetAll = %v, want ECONNRESET", err)
	}
}

// TestHalfClose: a client that sends a command and shuts its write side
// still gets the reply, then EOF.
func TestHalfClose(t *testing.T) {
	p, url := setup(t)
	ro, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if ro.Password != "" {
		t.Skip("the spawned server wants a password; this test speaks raw RESP without AUTH")
	}
	for _, lat := range []time.Duration{0, 50 * time.Millisecond} {
		p.SetLatency(lat)
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.Equal(got, []byte("+PONG\r\n")) {
			t.Errorf("latency %v: read %q, %v; want +PONG then EOF", lat, got, err)
		}
	}
}

func TestClose(t *testing.T) {
	p, url := setup(t)
	rdb := goRedis(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	p.SetLatency(time.Hour) // a reply waiting in the proxy must not hold Close up
	pingErr := make(chan error, 1)
	go func() { pingErr <- rdb.Ping(ctx).Err() }()

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-pingErr; err == nil {
		t.Errorf("PING in flight across Close succeeded, want an error")
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("Conns() after Close = %d, want 0", n)
	}
	// (No go-redis PING here: dialing a closed port, go-redis starts a
	// background redialer that outlives the test by a second.)
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("dial %s after Close succeeded, want it refused", p.Addr())
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := p.ResetAll(); n != 0 {
		t.Errorf("ResetAll() after Close = %d, want 0", n)
	}
}

// TestRueidisSurvivesReset: rueidis through the proxy reconnects by itself
// after ResetAll, whether its connections were idle or had a command in
// flight (a BLPOP, which rueidis sends on a connection of its blocking
// pool).
func TestRueidisSurvivesReset(t *testing.T) {
	srv, p, url := setupServer(t)
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	opt.DisableCache = true
	opt.ForceSingleClient = true
	rc, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("rueidis: %v", err)
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ping := func() error { return rc.Do(ctx, rc.B().Ping().Build()).Error() }
	if err := ping(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	for _, inFlight := range []bool{false, true, false, true} {
		var blpop chan error
		if inFlight {
			blpop = make(chan error, 1)
			go func() {
				blpop <- rc.Do(ctx, rc.B().Blpop().Key("proxy:rueidis").Timeout(20).Build()).Error()
			}()
			eventually(t, "the BLPOP blocked on the server", func() bool { return blockedClients(ctx, srv) == 1 })
		}
		if n := p.ResetAll(); n < 1 {
			t.Fatalf("in flight %v: ResetAll() = %d, want at least 1", inFlight, n)
		}
		if inFlight {
			if err := <-blpop; err == nil || !isReset(err) {
				t.Errorf("BLPOP in flight across ResetAll = %v, want a connection reset or EOF", err)
			}
		}
		// A PING sent as the reset lands may fail; rueidis must then
		// reconnect by itself.
		eventually(t, "a PING to succeed after ResetAll", func() bool { return ping() == nil })
		if n := p.Conns(); n < 1 {
			t.Errorf("in flight %v: Conns() = %d after reconnecting, want at least 1", inFlight, n)
		}
	}
}

// TestConcurrentUse runs clients while other goroutines reset and change
// the latency, for the race detector and the leak check; every call is
// bounded.
func TestConcurrentUse(t *testing.T) {
	p, url := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		rdb := goRedis(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				_ = rdb.Ping(ctx).Err() // resets make some fail
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := range 50 {
			p.SetLatency(time.Duration(j%3) * time.Millisecond)
			p.ResetAll()
			_ = p.Conns()
			time.Sleep(time.Millisecond)
		}
		p.SetLatency(0)
	}()
	wg.Wait()
	rdb := goRedis(t, url)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after the churn: %v", err)
	}
}

// TestLatencyNotSerialized: replies that reach the proxy at different
// times on one connection are each delayed by the latency, not queued
// behind each other's delay. An upstream of the test's own answers each
// byte at once; the client sends a byte every 100 ms. Serialized delays
// would take 5 × 500 ms; the bound below leaves over a second of slack
// above the 0.9 s expected.
func TestLatencyNotSerialized(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // echo: each byte answered at once
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p, err := Start(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Start's probe took the echo's one Accept: serve the real one too.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()

	const (
		lat   = 500 * time.Millisecond
		n     = 5
		every = 100 * time.Millisecond
	)
	p.SetLatency(lat)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	go func() {
		for i := range n {
			if _, err := c.Write([]byte{byte('a' + i)}); err != nil {
				return
			}
			time.Sleep(every)
		}
	}()
	start := time.Now()
	got := make([]byte, 0, n)
	buf := make([]byte, n)
	for len(got) < n {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read after %q: %v", got, err)
		}
		got = append(got, buf[:k]...)
	}
	total := time.Since(start)
	if string(got) != "abcde" {
		t.Errorf("replies %q, want %q in order", got, "abcde")
	}
	if total < lat {
		t.Errorf("replies took %v, want at least the latency %v", total, lat)
	}
	if limit := time.Duration(n) * lat * 4 / 5; total >= limit {
		t.Errorf("replies took %v, want under %v: the delays were serialized", total, limit)
	}
}
