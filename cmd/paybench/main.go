// Command paybench is a load-testing and correctness benchmark harness for
// the Redis operations payment systems are built on. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9/logging"

	"github.com/paybench/paybench/reports/errext"
)

// Exit codes, documented in README.md and in `paybench -h`; errext owns
// them.
const (
	exitOK            = int(errext.OK)
	exitFail          = int(errext.Fail)
	exitUsage         = int(errext.Usage)
	exitRedis         = int(errext.Redis)
	exitNotReproduced = int(errext.NotReproduced)
	exitInconclusive  = int(errext.Inconclusive)
	exitInterrupted   = int(errext.Interrupted)
)

const exitCodesHelp = `Exit codes:
  0    every cell as expected (PASS, or REPRODUCED for a strategy expected to break)
  1    a strategy expected to hold FAILed, a cell could not run, or a gate failed
       (compare: a regression, a broken invariant or a missing cell)
  2    usage error (bad flag or argument, unknown scenario/strategy/backend, bad URL,
       an output that cannot be written, a key prefix already in use)
  3    Redis unreachable, refused authentication, is not Redis, TLS failed, timed
       out, or the run's keys could not be deleted
  4    a bug expected to show did not (NOT-REPRODUCED)
  5    a cell could not be judged (INCONCLUSIVE: operations failed, the server
       restarted or lost data, paybench's own reads failed)
  130  interrupted (Ctrl-C); partial results are still written
`

// usageErrorf is a usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return errext.Errorf(errext.Usage, format, args...)
}

// withCode gives err the exit code, unless it carries one already.
func withCode(code int, err error) error {
	return errext.WithExitCodeIfNone(err, errext.ExitCode(code))
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"list", "list scenarios, their strategies and backends", cmdList},
		{"run", "run a scenario on every backend × strategy cell asked for", cmdRun},
		{"load", "drive one operation flat out or at a rate, outside any scenario", cmdLoad},
		{"suite", "run every scenario and load every operation on every backend; one summary matrix", cmdSuite},
		{"report", "render a saved result: text, matrix, markdown, html, junit, benchfmt, hgrm or json", cmdReport},
		{"compare", "compare a result with a baseline; exit 1 on a regression or a failed gate", cmdCompare},
		{"merge", "combine the results of one run taken by several load generators", cmdMerge},
		{"version", "print paybench's version and its client libraries", cmdVersion},
	}
}

func main() {
	// Errors reach the user once, through paybench's own one-line messages;
	// the client library's internal log would repeat them (with passwords
	// possibly in addresses), so it is silenced.
	logging.Disable()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command line: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(ctx, c.run(ctx, args[1:], stdout, stderr), stderr)
		}
	}
	fmt.Fprintf(stderr, "paybench: unknown command %q (try paybench -h)\n", args[0])
	return exitUsage
}

// exitCode prints err on one line and turns it into the exit code: the one
// place where an error becomes a number.
func exitCode(ctx context.Context, err error, stderr io.Writer) int {
	code, _ := errext.Code(err)
	if err == nil {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitOK
	}
	if errext.IsSilent(err) {
		return int(code)
	}
	if ctx.Err() != nil && code != errext.Usage {
		fmt.Fprintln(stderr, "paybench: interrupted")
		return exitInterrupted
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, "paybench: "+oneLine(msg))
	}
	return int(code)
}

func oneLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "paybench — load and correctness benchmarks for the Redis operations of payment systems")
	fmt.Fprintln(w, "\nUsage: paybench COMMAND [flags]   (paybench COMMAND -h for its flags)\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRedis: --redis-url or REDIS_URL (redis://, rediss://, unix://; password from the URL or")
	fmt.Fprintln(w, "REDIS_PASSWORD); else a redis-server on PATH, started and stopped by paybench; else a")
	fmt.Fprintln(w, "testcontainers Redis where Docker runs; else an embedded server (with a warning).")
	fmt.Fprintln(w)
	fmt.Fprint(w, exitCodesHelp)
}
