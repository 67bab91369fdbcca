package impl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// goRedisReply is an error reply as go-redis reports one: it has
// redis.Error's RedisError method.
type goRedisReply string

func (e goRedisReply) Error() string { return string(e) }
func (e goRedisReply) RedisError()   {}

// rueidisLike is an error reply as rueidis reports one: a *RedisError,
// with its methods, whose "ERR " rueidis stripped.
type rueidisLike struct {
	msg string
	nil bool
}

func (e *rueidisLike) Error() string     { return e.msg }
func (e *rueidisLike) IsNil() bool       { return e.nil }
func (e *rueidisLike) IsNoScript() bool  { return strings.HasPrefix(e.msg, "NOSCRIPT") }
func (e *rueidisLike) IsBusyGroup() bool { return strings.HasPrefix(e.msg, "BUSYGROUP") }

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "read: i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func wrap(err error) error { return fmt.Errorf("goredis stock lua: deduct %q: %w", "sku", err) }

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"contention", wrap(ErrContention), ClassContention},
		{"canceled", wrap(context.Canceled), ClassCanceled},
		{"deadline", wrap(context.DeadlineExceeded), ClassTimeout},
		{"os deadline", wrap(os.ErrDeadlineExceeded), ClassTimeout},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, ClassTimeout},
		{"refused", wrap(refused), ClassRefused},
		{"reset", reset, ClassConnection},
		{"broken pipe", wrap(syscall.EPIPE), ClassConnection},
		{"EOF", wrap(io.EOF), ClassConnection},
		{"unexpected EOF", io.ErrUnexpectedEOF, ClassConnection},
		{"closed conn", wrap(net.ErrClosed), ClassConnection},
		{"refused text", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), ClassRefused},
		{"EOF text", errors.New("read: EOF"), ClassConnection},
		{"client closed", errors.New("redis: client is closed"), ClassConnection},
		{"pool timeout", wrap(errors.New("redis: connection pool timeout")), ClassPoolExhausted},
		{"pool exhausted", errors.New("redis: connection pool exhausted"), ClassPoolExhausted},
		{"tls record header", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), ClassTLS},
		{"tls alert", &net.OpError{Op: "remote error", Err: tls.AlertError(42)}, ClassTLS},
		{"x509 authority", wrap(x509.UnknownAuthorityError{}), ClassTLS},
		{"tls verification", wrap(&tls.CertificateVerificationError{Err: x509.HostnameError{Host: "h", Certificate: &x509.Certificate{}}}), ClassTLS},
		{"tls text", errors.New("tls: first record does not look like a TLS handshake"), ClassTLS},
		{"x509 text", errors.New("dial: x509: certificate signed by unknown authority"), ClassTLS},
		{"noperm", wrap(goRedisReply("NOPERM this user has no permissions to run the 'evalsha' command")), ClassNoPerm},
		{"noperm plain leaf", wrap(errors.New("NOPERM User u has no permissions to access the 'k' key")), ClassNoPerm},
		{"oom", wrap(errors.New("OOM command not allowed when used memory > 'maxmemory'.")), ClassOOM},
		{"noscript", errors.New("NOSCRIPT No matching script. Please use EVAL."), ClassNoScript},
		{"unknown command", errors.New("ERR unknown command 'FOO', with args beginning with: 'bar' "), ClassUnknownCommand},
		{"unknown command old", errors.New("ERR unknown command `FOO`, with args beginning with: "), ClassUnknownCommand},
		{"unknown subcommand", errors.New("ERR unknown subcommand 'X'. Try CONFIG HELP."), ClassUnknownCommand},
		{"busy", errors.New("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."), ClassBusy},
		{"busygroup is not busy", errors.New("BUSYGROUP Consumer Group name already exists"), ClassRedis},
		{"loading", errors.New("LOADING Redis is loading the dataset in memory"), ClassLoading},
		{"readonly", errors.New("READONLY You can't write against a read only replica."), ClassReadOnly},
		{"moved", errors.New("MOVED 3999 127.0.0.1:6381"), ClassMoved},
		{"ask", errors.New("ASK 3999 127.0.0.1:6381"), ClassAsk},
		{"tryagain", errors.New("TRYAGAIN Multiple keys request during rehashing of slot"), ClassTryAgain},
		{"clusterdown", errors.New("CLUSTERDOWN The cluster is down"), ClassClusterDown},
		{"crossslot", errors.New("CROSSSLOT Keys in request don't hash to the same slot"), ClassCrossSlot},
		{"noauth", errors.New("NOAUTH Authentication required."), ClassAuth},
		{"wrongpass", errors.New("WRONGPASS invalid username-password pair or user is disabled."), ClassAuth},
		{"invalid password", errors.New("ERR invalid password"), ClassAuth},
		{"execabort", errors.New("EXECABORT Transaction discarded because of previous errors."), ClassExecAbort},
		{"wrongtype", wrap(goRedisReply("WRONGTYPE Operation against a key holding the wrong kind of value")), ClassWrongType},
		{"script runtime 6.x", errors.New("ERR Error running script (call to f_8b): @user_script:1: boom"), ClassScript},
		{"script runtime 7.x", errors.New("ERR user_script:1: boom script: 8290, on @user_script:1."), ClassScript},
		{"call inside a script", errors.New("WRONGTYPE Operation against a key holding the wrong kind of value script: f4b6, on @user_script:1."), ClassScript},
		{"oom inside a script", errors.New("OOM command not allowed when used memory > 'maxmemory'. script: ff96, on @user_script:1."), ClassOOM},
		{"other reply", errors.New("ERR value is not an integer or out of range"), ClassRedis},
		{"unknown code", errors.New("MASTERDOWN Link with MASTER is down"), ClassRedis},
		{"joined", errors.Join(errors.New("pipeline"), wrap(errors.New("WRONGTYPE Operation against a key"))), ClassWrongType},
		{"flattened", fmt.Errorf("deduct: %v", errors.New("NOPERM this user has no permissions")), ClassNoPerm},
		{"flattened ERR", errors.New("order create: ERR unknown command 'X'"), ClassUnknownCommand},
		{"go-redis nil", goRedisReply("redis: nil"), ClassOther},
		{"rueidis ERR stripped", wrap(&rueidisLike{msg: "unknown command 'X', with args beginning with: "}), ClassUnknownCommand},
		{"rueidis script stripped", wrap(&rueidisLike{msg: "user_script:1: boom script: 8290, on @user_script:1."}), ClassScript},
		{"rueidis other ERR", wrap(&rueidisLike{msg: "value is not an integer or out of range"}), ClassRedis},
		{"rueidis code kept", wrap(&rueidisLike{msg: "NOPERM this user has no permissions"}), ClassNoPerm},
		{"rueidis nil", wrap(&rueidisLike{msg: "redis nil message", nil: true}), ClassOther},
		{"other", errors.New("something odd"), ClassOther},
		{"other wrapped", wrap(errors.New("something odd")), ClassOther},
		{"lower-case words", errors.New("invalid id: x"), ClassOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err)
			if got != tc.want {
				t.Fatalf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
			}
			if got != "" && !slices.Contains(Classes(), got) {
				t.Fatalf("Classify returned %q, which Classes does not list", got)
			}
		})
	}
}

func TestReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
		ok   bool
	}{
		{"nil", nil, "", false},
		{"go-redis reply wrapped", wrap(goRedisReply("NOPERM no")), "NOPERM no", true},
		{"leaf reply", wrap(errors.New("WRONGTYPE Operation against a key")), "WRONGTYPE Operation against a key", true},
		{"joined", errors.Join(io.EOF, wrap(errors.New("OOM command not allowed"))), "OOM command not allowed", true},
		{"EOF is no reply", wrap(io.EOF), "", false},
		{"go-redis nil is no reply", goRedisReply("redis: nil"), "", false},
		{"rueidis ERR given back", wrap(&rueidisLike{msg: "unknown command 'X'"}), "ERR unknown command 'X'", true},
		{"rueidis code kept", wrap(&rueidisLike{msg: "OOM command not allowed"}), "OOM command not allowed", true},
		{"rueidis nil is no reply", wrap(&rueidisLike{msg: "redis nil message", nil: true}), "", false},
		{"plain", errors.New("something odd"), "", false},
		{"code alone", errors.New("ERR"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Reply(tc.err)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Reply(%v) = %q, %v; want %q, %v", tc.err, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	unknown := []string{ClassTimeout, ClassCanceled, ClassConnection, ClassWrongType, ClassScript, ClassRedis, ClassOther}
	seen := map[string]bool{}
	for _, c := range Classes() {
		if seen[c] {
			t.Errorf("Classes lists %q twice", c)
		}
		seen[c] = true
		want := OutcomeError
		if slices.Contains(unknown, c) {
			want = OutcomeUnknown
		}
		if got := Outcome(c); got != want {
			t.Errorf("Outcome(%q) = %q, want %q", c, got, want)
		}
		if MayHaveApplied(c) != (want == OutcomeUnknown) {
			t.Errorf("MayHaveApplied(%q) = %v", c, MayHaveApplied(c))
		}
	}
	if len(seen) != 25 {
		t.Errorf("Classes has %d classes, want 25", len(seen))
	}
	if Outcome("no such class") != OutcomeUnknown || !MayHaveApplied("") {
		t.Errorf("a class Outcome does not know must be unknown")
	}
}

func TestClassifyReply(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"NOPERM this user has no permissions to run the 'evalsha' command", ClassNoPerm},
		{"ERR unknown command 'X', with args beginning with: ", ClassUnknownCommand},
		{"unknown command 'X', with args beginning with: ", ClassUnknownCommand}, // rueidis strips "ERR "
		{"ERR value is not an integer or out of range", ClassRedis},
		{"value is not an integer or out of range", ClassRedis},
		{"invalid password", ClassAuth},
		{"user_script:1: boom script: 8290, on @user_script:1.", ClassScript},
		{"MYCODE my message", ClassRedis},
		{"", ClassRedis},
	} {
		if got := ClassifyReply(tc.msg); got != tc.want {
			t.Errorf("ClassifyReply(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}
