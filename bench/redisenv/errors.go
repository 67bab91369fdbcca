package redisenv

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Sentinel errors. Provide's errors wrap them (with %w); test with
// errors.Is.
var (
	// ErrBadURL is a usage error: a URL that does not parse, or whose scheme
	// is not redis://, rediss:// or unix://.
	ErrBadURL = errors.New("bad redis URL")
	// ErrBadKind is a usage error: an unknown kind name.
	ErrBadKind = errors.New("unknown redis kind")
	// ErrUnavailable says a kind cannot be had on this machine (no URL
	// given, no redis-server on PATH, no Docker engine answering).
	ErrUnavailable = errors.New("not available")
	// ErrUnreachable: nothing listens there (connection refused, no such
	// host, no such unix socket, network unreachable).
	ErrUnreachable = errors.New("redis unreachable")
	// ErrAuth: the server refused the credentials (NOAUTH, WRONGPASS,
	// invalid password).
	ErrAuth = errors.New("redis authentication failed")
	// ErrNotRedis: the peer answered, but not in the Redis protocol (an
	// HTTP server, a peer that hangs up).
	ErrNotRedis = errors.New("peer is not a Redis server")
	// ErrTLS: TLS failed. The URL and the server disagree on it — a
	// rediss:// URL to a server that does not answer TLS, a redis:// URL
	// to one that only speaks TLS — or the handshake failed (a
	// certificate that does not verify, a client certificate required).
	// The message says which, and what to change.
	ErrTLS = errors.New("redis TLS failed")
	// ErrTimeout: the dial, the handshake or a reply took longer than the
	// time-out.
	ErrTimeout = errors.New("redis timed out")
)

// IsConnectError reports whether err says the server could not be used:
// unreachable, refused authentication, not Redis, TLS failed, or timed
// out.
func IsConnectError(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrAuth) ||
		errors.Is(err, ErrNotRedis) || errors.Is(err, ErrTLS) || errors.Is(err, ErrTimeout)
}

// IsUsageError reports whether err is the user's mistake on the command
// line (a bad URL or kind, bad TLS settings).
func IsUsageError(err error) bool {
	return errors.Is(err, ErrBadURL) || errors.Is(err, ErrBadKind) || errors.Is(err, ErrBadTLS)
}

// connError is a classified connection failure: it unwraps to its class
// and to its cause, and its message is one line without the password.
type connError struct {
	msg   string
	class error
	cause error
}

func (e *connError) Error() string { return e.msg }
func (e *connError) Unwrap() []error {
	if e.class == nil {
		return []error{e.cause}
	}
	return []error{e.class, e.cause}
}

// tlsError is a TLS failure whose message already says where and what to
// change, such as "TLS handshake with 127.0.0.1:6379 failed: the server did
// not answer TLS (is it a plain redis:// server?)".
type tlsError struct {
	msg   string
	cause error
}

func (e *tlsError) Error() string { return e.msg }
func (e *tlsError) Unwrap() error { return e.cause }

// connectError classifies err, which a step (PING, INFO server) against the
// server at where (a redacted URL) returned. An error it cannot classify
// (a plain error reply, a cancelled context) is wrapped as it is.
func connectError(where, step string, err error, password string) error {
	var te *tlsError
	if errors.As(err, &te) {
		return &connError{msg: scrub(te.msg, password), class: ErrTLS, cause: err}
	}
	class := classify(err)
	msg := scrub(err.Error(), password)
	if class == nil {
		return &connError{msg: "redis at " + where + ": " + step + ": " + msg, cause: err}
	}
	return &connError{msg: class.Error() + " at " + where + ": " + msg, class: class, cause: err}
}

// classify returns the sentinel err belongs to, or nil.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	if authMessage(err.Error()) {
		return ErrAuth
	}
	var te *tlsError
	var cve *tls.CertificateVerificationError
	var remote *net.OpError
	if errors.As(err, &te) || errors.As(err, &cve) ||
		errors.As(err, &remote) && remote.Op == "remote error" { // a TLS alert from the server
		return ErrTLS
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return ErrTimeout
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EADDRNOTAVAIL),
		errors.As(err, &opErr) && opErr.Op == "dial":
		return ErrUnreachable
	}
	var re redis.Error
	if errors.Is(err, redis.Nil) {
		// A nil reply to PING or INFO: no Redis answers that.
		return ErrNotRedis
	}
	if errors.As(err, &re) {
		// A well-formed error reply: the peer speaks Redis.
		return nil
	}
	if errors.Is(err, redis.ErrPoolTimeout) {
		return ErrTimeout
	}
	var rh tls.RecordHeaderError
	switch {
	case errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolExhausted):
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &rh),
		// go-redis's protocol errors ("redis: can't parse ...", "redis:
		// invalid reply ...", "redis: the length of the array must be ...")
		strings.Contains(err.Error(), "redis: "):
		return ErrNotRedis
	}
	return nil
}

// authMessage reports whether msg is a server's refusal of credentials.
func authMessage(msg string) bool {
	for _, s := range []string{
		"NOAUTH", "WRONGPASS", "invalid password", "invalid username-password",
		"AUTH failed", "Authentication required", "called without any password configured",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
