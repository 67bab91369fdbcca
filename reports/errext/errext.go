// Package errext carries paybench's exit codes on errors, so that the
// package that knows why a run ended (a usage problem, an unreachable
// Redis, a failed verdict) says so once, and the command line turns the
// error into a number in one place. The idea is k6's errext: an inner code
// is never overwritten by accident, because wrapping only adds a code to an
// error that has none.
package errext

import (
	"errors"
	"fmt"
)

// ExitCode is a process exit status of paybench. The values are part of
// paybench's documented interface (README, `paybench -h`).
type ExitCode int

// Exit codes.
const (
	// OK: every cell as expected.
	OK ExitCode = 0
	// Fail: a strategy expected to hold FAILed, a cell could not run
	// (ERROR), a gate failed, or compare found a regression.
	Fail ExitCode = 1
	// Usage: bad flags or arguments, unreadable inputs, unwritable
	// outputs, a key prefix already in use.
	Usage ExitCode = 2
	// Redis: Redis unreachable, refused authentication, is not Redis,
	// timed out, or the run's keys could not be cleaned up.
	Redis ExitCode = 3
	// NotReproduced: a bug expected to show did not.
	NotReproduced ExitCode = 4
	// Inconclusive: a cell ran but could not be judged (its operations
	// failed, the server restarted or lost data, the harness's own reads
	// failed).
	Inconclusive ExitCode = 5
	// Interrupted: interrupted (Ctrl-C, SIGTERM); partial results are
	// written.
	Interrupted ExitCode = 130
)

// HasExitCode is an error that carries an exit code.
type HasExitCode interface {
	error
	ExitCode() ExitCode
}

// codeError is an error with an exit code.
type codeError struct {
	err  error
	code ExitCode
}

func (e *codeError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *codeError) Unwrap() error { return e.err }

// ExitCode implements HasExitCode.
func (e *codeError) ExitCode() ExitCode { return e.code }

// WithExitCodeIfNone returns err carrying code, unless err already carries
// one somewhere in its chain (then err is returned as it is). A nil err
// stays nil.
func WithExitCodeIfNone(err error, code ExitCode) error {
	if err == nil {
		return nil
	}
	var hc HasExitCode
	if errors.As(err, &hc) {
		return err
	}
	return &codeError{err: err, code: code}
}

// New returns an error with the message and the code.
func New(code ExitCode, msg string) error {
	return &codeError{err: errors.New(msg), code: code}
}

// Errorf formats an error (with %w support) that carries code.
func Errorf(code ExitCode, format string, args ...any) error {
	return &codeError{err: fmt.Errorf(format, args...), code: code}
}

// Silent returns an error that ends the command with code and prints
// nothing (the command has already said what happened).
func Silent(code ExitCode) error { return &codeError{code: code} }

// Code returns the exit code carried by err, and whether it carries one.
// A nil err is OK.
func Code(err error) (ExitCode, bool) {
	if err == nil {
		return OK, true
	}
	var hc HasExitCode
	if errors.As(err, &hc) {
		return hc.ExitCode(), true
	}
	return Fail, false
}

// IsSilent reports whether err has nothing to print.
func IsSilent(err error) bool {
	var ce *codeError
	return errors.As(err, &ce) && ce.err == nil
}
