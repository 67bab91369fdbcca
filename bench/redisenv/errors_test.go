package redisenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// peer is a loopback TCP server that runs handle on every connection. It
// stops, closing every connection, when the test ends.
func peer(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// httpPeer reads the request and answers like an HTTP server does to
// garbage, then hangs up.
func httpPeer(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _ = c.Read(make([]byte, 4096))
	_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	_ = c.Close()
}

// echoPeer writes back what it reads.
func echoPeer(c net.Conn) { _, _ = io.Copy(c, c) }

// silentPeer accepts and never answers; the cleanup closes the connection.
func silentPeer(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func noenv(string) string { return "" }

// Each failure is told apart by its class; the times only say which
// time-out ended it. A failure that must not wait for the dial time-out
// gets a long one (longDial) and must fail well before it; a silent peer
// must fail by the dial time-out (not before it, and long before the
// test's context), not by the context. The upper bounds are many times
// what an idle machine takes.
func TestProvideConnectErrors(t *testing.T) {
	t.Parallel()
	const dial, longDial = 500 * time.Millisecond, 30 * time.Second
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		want error
		alt  error // also accepted (a DNS lookup may time out offline)
		dial time.Duration
		// minimum and maximum time to fail
		min, max time.Duration
	}{
		{"refused", func(t *testing.T) string { return "redis://:pw-1@" + closedPort(t) }, ErrUnreachable, nil, longDial, 0, longDial / 2},
		{"no such host", func(*testing.T) string { return "redis://:pw-1@no-such-host.invalid:6379" }, ErrUnreachable, ErrTimeout, dial, 0, 20 * dial},
		{"no such socket", func(t *testing.T) string { return "unix://:pw-1@" + t.TempDir() + "/none.sock" }, ErrUnreachable, nil, longDial, 0, longDial / 2},
		{"http peer", func(t *testing.T) string { return "redis://:pw-1@" + peer(t, httpPeer) }, ErrNotRedis, nil, longDial, 0, longDial / 2},
		{"echo peer", func(t *testing.T) string { return "redis://:pw-1@" + peer(t, echoPeer) }, ErrNotRedis, nil, longDial, 0, longDial / 2},
		{"silent peer", func(t *testing.T) string { return "redis://:pw-1@" + peer(t, silentPeer) }, ErrTimeout, nil, dial, dial * 8 / 10, 20 * dial},
		{"silent peer, password override", func(t *testing.T) string { return "redis://" + peer(t, silentPeer) }, ErrTimeout, nil, dial, dial * 8 / 10, 20 * dial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*longDial)
			defer cancel()
			start := time.Now()
			s, err := Provide(ctx, Options{URL: tc.url(t), Password: "pw-1", Getenv: noenv, DialTimeout: tc.dial})
			took := time.Since(start)
			if s != nil {
				_ = s.Close()
			}
			if tc.alt != nil && errors.Is(err, tc.alt) {
				t.Logf("accepted alternative: %v", err)
			} else if !errors.Is(err, tc.want) || !IsConnectError(err) || IsUsageError(err) {
				t.Fatalf("Provide error = %v, want %v", err, tc.want)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("failed after %v with a %v dial time-out, want within [%v, %v]", took, tc.dial, tc.min, tc.max)
			}
			if msg := err.Error(); strings.Contains(msg, "pw-1") || strings.Contains(msg, "\n") {
				t.Errorf("error %q shows the password or spans lines", msg)
			}
		})
	}
}

// A cancelled context ends Provide: it does not wait for the (long) dial
// time-out.
func TestProvideCanceled(t *testing.T) {
	t.Parallel()
	const dial = time.Minute
	addr := peer(t, silentPeer)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := Provide(ctx, Options{URL: "redis://" + addr, Getenv: noenv, DialTimeout: dial})
	if !errors.Is(err, context.Canceled) || IsConnectError(err) {
		t.Errorf("Provide error = %v, want context.Canceled, not a connect error", err)
	}
	if took := time.Since(start); took > dial/2 {
		t.Errorf("cancelled Provide took %v", took)
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// replyErr is a Redis error reply.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestClassify(t *testing.T) {
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{nil, nil},
		{context.Canceled, nil},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), ErrTimeout},
		{os.ErrDeadlineExceeded, ErrTimeout},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, ErrTimeout},
		{&net.OpError{Op: "dial", Err: timeoutErr{}}, ErrTimeout},
		{dialRefused, ErrUnreachable},
		{&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, ErrUnreachable},
		{&net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENOENT)}, ErrUnreachable},
		{replyErr("NOAUTH Authentication required."), ErrAuth},
		{fmt.Errorf("failed to authenticate: %w", replyErr("WRONGPASS invalid username-password pair or user is disabled.")), ErrAuth},
		{replyErr("ERR invalid password"), ErrAuth},
		{replyErr("ERR AUTH <password> called without any password configured for the default user."), ErrAuth},
		{replyErr("ERR unknown command 'INFO'"), nil},
		{io.EOF, ErrNotRedis},
		{io.ErrUnexpectedEOF, ErrNotRedis},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ErrNotRedis},
		{errors.New(`redis: can't parse "HTTP/1.1 400 Bad Request"`), ErrNotRedis},
		{errors.New(`redis: invalid reply: "H"`), ErrNotRedis},
		{fmt.Errorf("failed to initialize: %w", errors.New("redis: the length of the array must be a multiple of 2, got: 5")), ErrNotRedis},
		{redis.Nil, ErrNotRedis},
		{redis.ErrPoolTimeout, ErrTimeout},
		{redis.ErrClosed, nil},
		{errors.New("something else"), nil},
		{&tlsError{msg: "TLS handshake with h:1 failed", cause: context.DeadlineExceeded}, ErrTLS},
		{fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}), ErrTLS},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, ErrTLS},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestIsConnectError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("x"), false},
		{fmt.Errorf("a: %w", ErrUnreachable), true},
		{fmt.Errorf("a: %w", ErrAuth), true},
		{fmt.Errorf("a: %w", ErrNotRedis), true},
		{fmt.Errorf("a: %w", ErrTimeout), true},
		{fmt.Errorf("a: %w", ErrTLS), true},
		{fmt.Errorf("a: %w", ErrBadURL), false},
		{fmt.Errorf("a: %w", ErrUnavailable), false},
		{connectError("redis://h", "PING", context.DeadlineExceeded, ""), true},
		{connectError("redis://h", "PING", replyErr("ERR x"), ""), false},
	} {
		if got := IsConnectError(tc.err); got != tc.want {
			t.Errorf("IsConnectError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestConnectErrorUnwrapsCause(t *testing.T) {
	err := connectError("redis://:xxxxx@h", "PING", fmt.Errorf("read: %w\nline two sekrit", context.DeadlineExceeded), "sekrit")
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not unwrap to its class and cause", err)
	}
	if msg := err.Error(); strings.Contains(msg, "sekrit") || strings.Contains(msg, "\n") {
		t.Errorf("message %q", msg)
	}
}
