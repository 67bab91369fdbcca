package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
)

// connFlags say where Redis comes from.
type connFlags struct {
	url    string
	source string
}

func (c *connFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.url, "redis-url", "", "Redis to use: redis://, rediss:// or unix:// (default $REDIS_URL; password from the URL or $REDIS_PASSWORD)")
	fs.StringVar(&c.source, "redis", "auto", "where Redis comes from: auto, url, spawn, container or embedded")
}

// provide finds or starts the Redis for a run. Bad URLs and sources are
// usage errors; a server that cannot be used is exit 3.
func (c *connFlags) provide(ctx context.Context, stderr io.Writer) (*redisenv.Server, error) {
	kind, err := redisenv.ParseKind(c.source)
	if err != nil {
		return nil, usageErrorf("--redis: %w", err)
	}
	srv, err := redisenv.Provide(ctx, redisenv.Options{
		URL:      c.url,
		Password: os.Getenv("REDIS_PASSWORD"),
		Force:    kind,
		Warn:     stderr,
	})
	switch {
	case err == nil:
		return srv, nil
	case errors.Is(err, redisenv.ErrBadURL):
		return nil, withCode(exitUsage, err)
	case ctx.Err() != nil:
		return nil, withCode(exitInterrupted, err)
	default:
		return nil, withCode(exitRedis, err)
	}
}

// commonFlags are the flags of every command that drives load.
type commonFlags struct {
	conn        connFlags
	backends    string
	strategies  string
	concurrency int
	duration    time.Duration
	seed        uint64
	prefix      string
	keep        bool
	// quick is the suite's --quick, passed to scenarios as Common.Quick.
	quick bool
	// outputFlags are the result files and gates (outputs.go).
	outputFlags
}

func (c *commonFlags) bind(fs *pflag.FlagSet) {
	c.conn.bind(fs)
	fs.StringVar(&c.backends, "backend", strings.Join(impl.Backends(), ","), "client backends, comma-separated")
	fs.StringVar(&c.strategies, "strategy", "", "strategies, comma-separated (default: all of the scenario)")
	fs.IntVarP(&c.concurrency, "concurrency", "c", 50, "concurrent workers")
	fs.DurationVar(&c.duration, "duration", 0, "stop each cell after this long (0: when its work is done)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed for every random choice")
	fs.StringVar(&c.prefix, "prefix", "", "key prefix of the run (default pb:<run-id>:)")
	fs.BoolVar(&c.keep, "keep", false, "keep the run's keys at the end and print their prefix")
	c.outputFlags.bind(fs)
}

// validate checks the shared flags and returns the run's keyspace.
func (c *commonFlags) validate() (impl.Keyspace, error) {
	if c.concurrency < 1 {
		return impl.Keyspace{}, usageErrorf("--concurrency must be >= 1, got %d", c.concurrency)
	}
	if c.duration < 0 {
		return impl.Keyspace{}, usageErrorf("--duration must be >= 0, got %s", c.duration)
	}
	if err := c.outputFlags.validate(); err != nil {
		return impl.Keyspace{}, err
	}
	for _, b := range splitList(c.backends) {
		if !contains(impl.Backends(), b) {
			return impl.Keyspace{}, usageErrorf("unknown backend %q (known: %s)", b, strings.Join(impl.Backends(), ", "))
		}
	}
	if len(splitList(c.backends)) == 0 {
		return impl.Keyspace{}, usageErrorf("--backend is empty")
	}
	prefix := c.prefix
	if prefix == "" {
		prefix = "pb:" + runID() + ":"
	}
	ks, err := impl.NewKeyspace(prefix)
	if err != nil {
		return impl.Keyspace{}, usageErrorf("--prefix: %w", err)
	}
	return ks, nil
}

// newFlagSet returns a flag set that reports errors through its caller.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parse parses args; -h prints the usage to stdout and returns errHelp.
func parse(fs *pflag.FlagSet, args []string, stdout io.Writer, synopsis string) error {
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: %s\n\nFlags:\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprint(stdout, "\n"+exitCodesHelp)
		return errHelp
	}
	if err != nil {
		return usageErrorf("%w", err)
	}
	return nil
}

// errHelp ends a command after -h with exit 0 and no message.
var errHelp = &exitError{code: exitOK}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
