package impl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/paybench/paybench/impl/wiretap"
)

// Error classes: what an operation's error is reported as. Each backend's
// Backend.Classify names them from its library's typed errors and falls
// back to Classify, which reads only the standard library's errors and the
// error's text. Every class also has an Outcome: OutcomeError when the
// command surely did not apply, OutcomeUnknown when it may have.
const (
	// ClassTimeout: a context deadline or a network time-out. The command
	// may have reached the server and applied (unknown).
	ClassTimeout = "timeout"
	// ClassCanceled: the caller's context was cancelled while the operation
	// ran; it may have been sent already (unknown).
	ClassCanceled = "canceled"
	// ClassConnection: the connection was lost — reset, closed, EOF,
	// broken pipe, or the client was closed. A connection lost after the
	// command was written may have applied it (unknown).
	ClassConnection = "connection"
	// ClassRefused: no connection could be made (a dial refused or failed:
	// the server is down or restarting); nothing was sent (error).
	ClassRefused = "refused"
	// ClassTLS: the TLS handshake failed (record header, alert, certificate
	// verification, x509). Nothing was sent in the clear or otherwise
	// (error).
	ClassTLS = "tls"
	// ClassPoolExhausted: no connection could be taken from the client's
	// pool in time (go-redis's "redis: connection pool timeout"); the
	// command was never sent (error).
	ClassPoolExhausted = "pool_exhausted"
	// ClassContention: an optimistic (WATCH) operation gave up after its
	// bounded retries (ErrContention); every EXEC was aborted (error).
	ClassContention = "contention"
	// ClassAuth: NOAUTH or WRONGPASS — the connection is not authenticated
	// (error).
	ClassAuth = "auth"
	// ClassNoPerm: NOPERM — the ACL user may not run the command or touch
	// the key; refused before it ran (error).
	ClassNoPerm = "noperm"
	// ClassOOM: OOM — maxmemory is reached with the noeviction policy and a
	// write was refused before it ran (error).
	ClassOOM = "oom"
	// ClassNoScript: NOSCRIPT — EVALSHA of a script the server does not
	// hold (error). The libraries' script helpers retry with EVAL, so it
	// shows only when that fallback is not taken.
	ClassNoScript = "noscript"
	// ClassUnknownCommand: "ERR unknown command" or "unknown subcommand" —
	// the server does not know the command (renamed, disabled, too old a
	// version) (error).
	ClassUnknownCommand = "unknown_command"
	// ClassBusy: BUSY — a script or function runs past its time limit and
	// the server refuses other commands (error).
	ClassBusy = "busy"
	// ClassLoading: LOADING — the server is loading its dataset (error).
	ClassLoading = "loading"
	// ClassReadOnly: READONLY — a write sent to a replica (error).
	ClassReadOnly = "readonly"
	// ClassMoved: MOVED — Redis Cluster: the slot lives on another node
	// (error).
	ClassMoved = "moved"
	// ClassAsk: ASK — Redis Cluster: the slot is migrating; ask the other
	// node (error).
	ClassAsk = "ask"
	// ClassTryAgain: TRYAGAIN — Redis Cluster: a multi-key command during a
	// slot migration (error).
	ClassTryAgain = "tryagain"
	// ClassClusterDown: CLUSTERDOWN — the cluster cannot serve the slot
	// (error).
	ClassClusterDown = "clusterdown"
	// ClassCrossSlot: CROSSSLOT — the keys of one command or transaction
	// hash to different slots (error).
	ClassCrossSlot = "crossslot"
	// ClassExecAbort: EXECABORT — EXEC discarded the transaction because a
	// queued command was refused; nothing of it ran (error).
	ClassExecAbort = "execabort"
	// ClassWrongType: WRONGTYPE — a command against a key holding another
	// type. A single command did not apply, but inside MULTI/EXEC the other
	// queued commands did, and the class cannot tell which (unknown).
	ClassWrongType = "wrongtype"
	// ClassScript: a Lua script failed while it ran ("ERR Error running
	// script", "user_script", and any error a redis.call raised inside it
	// other than the server's own refusals — OOM, NOPERM, READONLY, ...,
	// which keep their class). Scripts are not rolled back: writes made
	// before the failure stay (unknown).
	ClassScript = "script"
	// ClassRedis: any other error reply (ERR ..., a code not listed here).
	// Usually refused before anything applied, but a runtime error inside
	// MULTI/EXEC leaves the other queued commands applied (unknown).
	ClassRedis = "redis"
	// ClassOther: an error no rule recognises (unknown).
	ClassOther = "other"
)

// Outcomes of a failed operation, as Outcome reports them.
const (
	// OutcomeError: the command surely did not apply.
	OutcomeError = "error"
	// OutcomeUnknown: the command may have applied (wholly or in part);
	// only the server's state can tell.
	OutcomeUnknown = "unknown"
)

// classOutcomes is every class in display order with its outcome.
var classOutcomes = []struct{ class, outcome string }{
	{ClassTimeout, OutcomeUnknown},
	{ClassCanceled, OutcomeUnknown},
	{ClassConnection, OutcomeUnknown},
	{ClassRefused, OutcomeError},
	{ClassTLS, OutcomeError},
	{ClassPoolExhausted, OutcomeError},
	{ClassContention, OutcomeError},
	{ClassAuth, OutcomeError},
	{ClassNoPerm, OutcomeError},
	{ClassOOM, OutcomeError},
	{ClassNoScript, OutcomeError},
	{ClassUnknownCommand, OutcomeError},
	{ClassBusy, OutcomeError},
	{ClassLoading, OutcomeError},
	{ClassReadOnly, OutcomeError},
	{ClassMoved, OutcomeError},
	{ClassAsk, OutcomeError},
	{ClassTryAgain, OutcomeError},
	{ClassClusterDown, OutcomeError},
	{ClassCrossSlot, OutcomeError},
	{ClassExecAbort, OutcomeError},
	{ClassWrongType, OutcomeUnknown},
	{ClassScript, OutcomeUnknown},
	{ClassRedis, OutcomeUnknown},
	{ClassOther, OutcomeUnknown},
}

// Classes lists every error class in display order.
func Classes() []string {
	out := make([]string, len(classOutcomes))
	for i, c := range classOutcomes {
		out[i] = c.class
	}
	return out
}

// Outcome returns OutcomeError when an operation that failed with class
// surely did not apply, else OutcomeUnknown — also for a class it does not
// know, which is the safe answer.
func Outcome(class string) string {
	for _, c := range classOutcomes {
		if c.class == class {
			return c.outcome
		}
	}
	return OutcomeUnknown
}

// MayHaveApplied reports whether an operation that failed with class may
// have applied on the server: Outcome(class) == OutcomeUnknown.
func MayHaveApplied(class string) bool { return Outcome(class) == OutcomeUnknown }

// replyCodes maps an error reply's leading code word to its class. ERR is
// looked at more closely by ClassifyReply.
var replyCodes = map[string]string{
	"NOAUTH":      ClassAuth,
	"WRONGPASS":   ClassAuth,
	"NOPERM":      ClassNoPerm,
	"OOM":         ClassOOM,
	"NOSCRIPT":    ClassNoScript,
	"BUSY":        ClassBusy,
	"LOADING":     ClassLoading,
	"READONLY":    ClassReadOnly,
	"MOVED":       ClassMoved,
	"ASK":         ClassAsk,
	"TRYAGAIN":    ClassTryAgain,
	"CLUSTERDOWN": ClassClusterDown,
	"CROSSSLOT":   ClassCrossSlot,
	"EXECABORT":   ClassExecAbort,
	"WRONGTYPE":   ClassWrongType,
}

// inScriptCauses are the classes a reply raised inside a script keeps:
// refusals by the server's state or configuration, not by the script.
var inScriptCauses = map[string]bool{
	ClassOOM: true, ClassNoPerm: true, ClassBusy: true, ClassLoading: true, ClassReadOnly: true,
	ClassMoved: true, ClassAsk: true, ClassTryAgain: true, ClassClusterDown: true, ClassCrossSlot: true,
}

// ClassifyReply returns the class of a Redis error reply's text, such as
// "NOPERM this user has no permissions to run the 'evalsha' command": an
// error raised inside a Lua script is ClassScript (its writes before the
// error stay), unless its code is a refusal by the server's state (OOM,
// NOPERM, READONLY, BUSY, LOADING, cluster redirections), which keeps its
// own class; otherwise the leading code word decides,
// and an ERR reply is ClassUnknownCommand, ClassAuth or ClassRedis by its
// words. A text that starts with no code word is taken for an ERR reply
// whose "ERR " the client library stripped (rueidis does). A code it does
// not know is ClassRedis.
func ClassifyReply(msg string) string {
	code, rest, _ := strings.Cut(msg, " ")
	if strings.Contains(msg, "user_script") || strings.Contains(msg, "Error running script") {
		// Inside a script, a refusal of the server's own (OOM, NOPERM,
		// READONLY, ...) keeps its name: it is the cause a user must see.
		// Anything else — a WRONGTYPE, a runtime error — is the script's.
		if c, ok := replyCodes[code]; ok && inScriptCauses[c] {
			return c
		}
		return ClassScript
	}
	if c, ok := replyCodes[code]; ok {
		return c
	}
	if code != "ERR" && !looksLikeReply(msg) {
		code, rest = "ERR", msg
	}
	if code == "ERR" {
		lower := strings.ToLower(rest)
		switch {
		case strings.HasPrefix(lower, "unknown command"), strings.HasPrefix(lower, "unknown subcommand"):
			return ClassUnknownCommand
		case strings.HasPrefix(lower, "invalid password"),
			strings.HasPrefix(lower, "client sent auth, but no password is set"),
			strings.HasPrefix(lower, "auth <password> called without any password configured"):
			return ClassAuth
		}
	}
	return ClassRedis
}

// redisReply is go-redis's redis.Error, matched by its method so that impl
// need not import the library.
type redisReply interface {
	error
	RedisError()
}

// rueidisReply is rueidis's *RedisError, matched by its methods so that
// impl need not import the library.
type rueidisReply interface {
	error
	IsNil() bool
	IsNoScript() bool
	IsBusyGroup() bool
}

// Reply returns the text of the Redis error reply that err carries, however
// wrapped (%w, errors.Join), and true; or "", false when err carries none.
// It recognises a go-redis reply by its RedisError method, a rueidis reply
// by its methods (and gives back the "ERR " that rueidis strips, so the
// text is the server's own words), and any other by its text: the
// innermost error whose message starts with an upper-case code word
// followed by a space ("WRONGTYPE Operation against ...").
func Reply(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	var rr redisReply
	if errors.As(err, &rr) {
		if msg := rr.Error(); looksLikeReply(msg) {
			return msg, true
		}
	}
	var ru rueidisReply
	if errors.As(err, &ru) && !ru.IsNil() {
		msg := ru.Error()
		if !looksLikeReply(msg) {
			msg = "ERR " + msg
		}
		return msg, true
	}
	var found string
	walkLeaves(err, 0, func(e error) bool {
		if msg := e.Error(); looksLikeReply(msg) {
			found = msg
			return true
		}
		return false
	})
	return found, found != ""
}

// maxUnwrapDepth bounds walkLeaves on pathological error chains.
const maxUnwrapDepth = 32

// walkLeaves calls fn on every error of err's tree that wraps nothing,
// depth first, until fn returns true; it reports whether fn did.
func walkLeaves(err error, depth int, fn func(error) bool) bool {
	if err == nil || depth > maxUnwrapDepth {
		return false
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return walkLeaves(inner, depth+1, fn)
		}
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			if walkLeaves(inner, depth+1, fn) {
				return true
			}
		}
		return false
	}
	return fn(err)
}

// looksLikeReply reports whether msg reads as a Redis error reply: a code
// word of at least two upper-case letters, a space and more text.
func looksLikeReply(msg string) bool {
	code, rest, ok := strings.Cut(msg, " ")
	if !ok || len(code) < 2 || rest == "" {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < 'A' || code[i] > 'Z' {
			return false
		}
	}
	return true
}

// Classify is the library-neutral classifier every backend falls back to,
// and the engine's default. It recognises, however wrapped: ErrContention;
// context cancellation and deadlines, net.Error time-outs and
// os.ErrDeadlineExceeded; a Redis error reply (see Reply and
// ClassifyReply); go-redis's pool time-out by its text; TLS handshake and
// certificate errors; connection failures (net.OpError, refused, reset,
// aborted, broken pipe, EOF, closed connections); and, in a message that
// was flattened (%v instead of %w), a known reply code after ": ". Anything
// else is ClassOther; nil is "".
func Classify(err error) string {
	if err == nil {
		return ""
	}
	// A connection failure made final (wiretap) is classified as itself.
	err = wiretap.Reveal(err)
	switch {
	case errors.Is(err, ErrContention):
		return ClassContention
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case isTimeout(err):
		return ClassTimeout
	}
	if msg, ok := Reply(err); ok {
		return ClassifyReply(msg)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection pool timeout"), strings.Contains(msg, "connection pool exhausted"):
		return ClassPoolExhausted
	case isTLS(err, msg):
		return ClassTLS
	case isRefused(err, msg):
		return ClassRefused
	case isConnection(err, msg):
		return ClassConnection
	}
	if reply, ok := flattenedReply(msg); ok {
		return ClassifyReply(reply)
	}
	return ClassOther
}

// isTimeout reports a deadline or a network time-out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// isTLS reports a TLS handshake or certificate failure.
func isTLS(err error, msg string) bool {
	var (
		rh    tls.RecordHeaderError
		alert tls.AlertError
		cv    *tls.CertificateVerificationError
		ua    x509.UnknownAuthorityError
		he    x509.HostnameError
		ci    x509.CertificateInvalidError
	)
	return errors.As(err, &rh) || errors.As(err, &alert) || errors.As(err, &cv) ||
		errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		strings.HasPrefix(msg, "tls:") || strings.Contains(msg, " tls: ") || strings.Contains(msg, "x509: ")
}

// isRefused reports a connection that could not be made: a failed dial.
func isRefused(err error, msg string) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connect: connection refused") || strings.Contains(msg, "dial tcp")
}

// isConnection reports a failed, refused or lost connection.
func isConnection(err error, msg string) bool {
	var oe *net.OpError
	switch {
	case errors.As(err, &oe),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "use of closed network connection", "client is closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return msg == "EOF" || strings.HasSuffix(msg, ": EOF") || strings.HasSuffix(msg, "unexpected EOF")
}

// flattenedReply finds a known reply code after ": " in a message whose
// reply was formatted into the text rather than wrapped, and returns the
// reply from there.
func flattenedReply(msg string) (string, bool) {
	for i := strings.Index(msg, ": "); i >= 0; {
		rest := msg[i+2:]
		code, _, _ := strings.Cut(rest, " ")
		if _, ok := replyCodes[code]; ok || code == "ERR" {
			if looksLikeReply(rest) {
				return rest, true
			}
		}
		j := strings.Index(rest, ": ")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return "", false
}
