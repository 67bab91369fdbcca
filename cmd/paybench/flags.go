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

	"github.com/paybench/paybench/bench/faults"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/scenarios/histcheck"
	"github.com/paybench/paybench/scenarios/runner"
)

// maxWorkers bounds --concurrency (and load's --max-workers) in every
// command: each worker holds its own latency histograms (about 0.6 MB for
// a load worker) and, on go-redis, a connection of its own.
const maxWorkers = 10_000

// connFlags say where Redis comes from.
type connFlags struct {
	url         string
	source      string
	persistence string
	tls         redisenv.TLSFiles
	cluster     bool
}

func (c *connFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.url, "redis-url", "", "Redis to use: redis://, rediss:// or unix:// (default $REDIS_URL; password from the URL or $REDIS_PASSWORD)")
	fs.StringVar(&c.source, "redis", "auto", "where Redis comes from: auto, url, spawn, container, embedded, redlock[:N] (N independent spawned servers, default 5) or cluster (a spawned 3-master Redis Cluster; auto never picks it)")
	fs.BoolVar(&c.cluster, "cluster", false, "the --redis-url server is a Redis Cluster: the URL's host and any addr=HOST:PORT query parameters are seed addresses")
	fs.StringVar(&c.persistence, "persistence", "none", "a spawned server's persistence: none, or aof (appendonly, fsync always: its data survives a restart fault)")
	fs.StringVar(&c.tls.CA, "tls-ca", "", "rediss://: PEM file of the CA certificates the server's certificate must chain to (default: the system's)")
	fs.StringVar(&c.tls.Cert, "tls-cert", "", "rediss://: PEM file of a client certificate to present (with --tls-key)")
	fs.StringVar(&c.tls.Key, "tls-key", "", "rediss://: PEM file of the client certificate's private key")
	fs.StringVar(&c.tls.ServerName, "tls-server-name", "", "rediss://: the name the server's certificate must carry (default: the URL's host)")
	fs.BoolVar(&c.tls.Insecure, "tls-insecure", false, "rediss://: accept any server certificate, unverified (testing only)")
}

// serverArgs turns --persistence into a spawned server's arguments.
func (c *connFlags) serverArgs() ([]string, error) {
	switch c.persistence {
	case "none", "":
		return nil, nil
	case "aof":
		if c.source != "spawn" && c.source != "auto" {
			return nil, usageErrorf("--persistence aof applies to a server paybench spawns (--redis spawn), not to --redis %s", c.source)
		}
		return []string{"--appendonly", "yes", "--appendfsync", "always"}, nil
	}
	return nil, usageErrorf("--persistence: %q is not none or aof", c.persistence)
}

// provide finds or starts the Redis for a run. Bad URLs and sources are
// usage errors; a server that cannot be used is exit 3.
func (c *connFlags) provide(ctx context.Context, stderr io.Writer) (*redisenv.Server, error) {
	kind, err := redisenv.ParseKind(c.source)
	if err != nil {
		return nil, usageErrorf("--redis: %w", err)
	}
	args, err := c.serverArgs()
	if err != nil {
		return nil, err
	}
	if c.cluster && kind != redisenv.KindURL && kind != redisenv.KindAuto {
		return nil, usageErrorf("--cluster names a Redis Cluster behind --redis-url; it does not apply to --redis %s", kind)
	}
	if c.cluster && c.url == "" && os.Getenv(redisenv.EnvURL) == "" {
		return nil, usageErrorf("--cluster names a Redis Cluster behind --redis-url, and no URL was given (--redis-url or $%s); --redis cluster spawns one", redisenv.EnvURL)
	}
	if args != nil && (c.url != "" || os.Getenv(redisenv.EnvURL) != "") && kind != redisenv.KindSpawn {
		return nil, usageErrorf("--persistence aof applies to a server paybench spawns, not to a --redis-url server")
	}
	if args != nil {
		kind = redisenv.KindSpawn
	}
	redlockN, _, _ := redisenv.ParseRedlock(c.source)
	tlsConfig, err := c.tls.Config()
	if err != nil {
		return nil, usageErrorf("--tls-*: %w", err)
	}
	srv, err := redisenv.Provide(ctx, redisenv.Options{
		URL:            c.url,
		Password:       os.Getenv("REDIS_PASSWORD"),
		Force:          kind,
		Warn:           stderr,
		ServerArgs:     args,
		TLS:            tlsConfig,
		Cluster:        c.cluster,
		RedlockServers: redlockN,
	})
	switch {
	case err == nil:
		return srv, nil
	case redisenv.IsUsageError(err):
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
	sharePrefix bool
	keep        bool
	faults      []string
	retries     string
	readTimeout time.Duration
	dialTimeout time.Duration
	metricsAddr string
	config      string
	outputFlags
	history        string
	historyTimeout time.Duration
	waitReplicas   int
	waitTimeout    time.Duration
}

func (c *commonFlags) bind(fs *pflag.FlagSet) {
	c.conn.bind(fs)
	fs.StringVar(&c.backends, "backend", strings.Join(impl.Backends(), ","), "client backends, comma-separated")
	fs.StringVar(&c.strategies, "strategy", "", "strategies, comma-separated (default: all of the scenario)")
	fs.IntVarP(&c.concurrency, "concurrency", "c", 50, fmt.Sprintf("concurrent workers (1..%d)", maxWorkers))
	fs.DurationVar(&c.duration, "duration", 0, "stop each cell after this long (0: when its work is done)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed for every random choice")
	fs.StringVar(&c.prefix, "prefix", "", "key prefix of the run (default pb:<run-id>:); refused when it already holds keys")
	fs.BoolVar(&c.sharePrefix, "share-prefix", false, "run on a --prefix that already holds keys, on purpose (several generators contending on the same keys)")
	fs.BoolVar(&c.keep, "keep", false, "keep the run's keys at the end and print their prefix")
	fs.StringArrayVar(&c.faults, "fault", nil, "apply a fault to every cell, at a time from the cell's start (repeatable): pause:DUR@AT, kill-conns@AT[/EVERY], restart@AT, oom@AT[+DUR], latency:DELAY@AT[+DUR], reset@AT[/EVERY]; on a Redis Cluster: reshard@AT, failover[:force]@AT; see README \"Faults\"")
	fs.StringVar(&c.retries, "client-retries", "", "how the clients under test retry: 0 (none, the default unless the URL's max_retries says otherwise), library (each library's own default: go-redis re-sends up to 3 times, writes too; rueidis re-sends read-only commands) or N")
	fs.DurationVar(&c.readTimeout, "read-timeout", 0, "how long the clients under test wait for a reply (default: the URL's, else 3s)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 0, "how long the clients under test wait for a connection (default: the URL's, else 3s)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve live Prometheus metrics (paybench_*) at http://HOST:PORT/metrics while the run goes (port 0: a free one, printed on stderr)")
	c.outputFlags.bind(fs)
	fs.StringVar(&c.config, configFlag, "", "read flags from this YAML or JSON file (keys: flag names without dashes; flags on the command line win; see README \"Config file\")")
	fs.StringVar(&c.history, "history", "auto", "record what every client was told and check it for linearizability: off, on, or auto (scenario cells of at most 5000 operations); see README \"Histories\"")
	fs.DurationVar(&c.historyTimeout, "history-timeout", histcheck.DefaultTimeout, "time budget of one cell's history check; beyond it the result is unknown (never a PASS)")
	fs.IntVar(&c.waitReplicas, "wait-replicas", 0, fmt.Sprintf("send WAIT N after each write of the stock strategies %v, on the write's connection (0: none); writes fewer replicas confirmed are counted (writes_unconfirmed); see README \"A failover under load\"", impl.WaitStrategies()))
	fs.DurationVar(&c.waitTimeout, "wait-timeout", impl.DefaultWaitTimeout, "the time-out of --wait-replicas' WAIT (shorter than --read-timeout)")
}

// plan checks the shared flags and returns the part of the plan they
// make.
func (c *commonFlags) plan(kind string) (*runner.Plan, error) {
	switch {
	case c.concurrency < 1 || c.concurrency > maxWorkers:
		return nil, usageErrorf("--concurrency must be 1..%d, got %d", maxWorkers, c.concurrency)
	case c.duration < 0:
		return nil, usageErrorf("--duration must be >= 0, got %s", c.duration)
	case c.sharePrefix && c.prefix == "":
		return nil, usageErrorf("--share-prefix needs --prefix")
	}
	gates, err := c.outputFlags.gates()
	if err != nil {
		return nil, err
	}
	specs, err := faults.ParseAll(c.faults)
	if err != nil {
		return nil, usageErrorf("--fault: %w", err)
	}
	if _, err := c.conn.serverArgs(); err != nil {
		return nil, err
	}
	hmode, err := histcheck.ParseMode(c.history)
	if err != nil {
		return nil, usageErrorf("--history: %w", err)
	}
	if c.historyTimeout <= 0 {
		return nil, usageErrorf("--history-timeout must be > 0, got %s", c.historyTimeout)
	}
	if c.waitTimeout <= 0 {
		return nil, usageErrorf("--wait-timeout must be > 0, got %s", c.waitTimeout)
	}
	client := impl.ConnConfig{Retries: c.retries, ReadTimeout: c.readTimeout, DialTimeout: c.dialTimeout, WaitReplicas: c.waitReplicas, WaitTimeout: c.waitTimeout}
	if err := client.Validate(); err != nil {
		return nil, usageErrorf("--client-retries/--read-timeout/--dial-timeout/--wait-replicas/--wait-timeout: %w", err)
	}
	backends := splitList(c.backends)
	if len(backends) == 0 {
		return nil, usageErrorf("--backend is empty")
	}
	for _, b := range backends {
		if !contains(impl.Backends(), b) {
			return nil, usageErrorf("unknown backend %q (known: %s)", b, strings.Join(impl.Backends(), ", "))
		}
	}
	prefix := c.prefix
	if prefix == "" {
		prefix = "pb:" + runID() + ":"
	}
	ks, err := impl.NewKeyspace(prefix)
	if err != nil {
		return nil, usageErrorf("--prefix: %w", err)
	}
	return &runner.Plan{
		Kind:        kind,
		Command:     redactArgs(os.Args),
		Backends:    backends,
		Settings:    runner.Settings{Concurrency: c.concurrency, Duration: c.duration, Seed: c.seed, Client: client, History: histcheck.Options{Mode: hmode, Timeout: c.historyTimeout}},
		Keys:        ks,
		CheckPrefix: c.prefix != "",
		SharePrefix: c.sharePrefix,
		Keep:        c.keep,
		Outputs:     c.outputFlags.outputs(),
		Gates:       gates,
		Faults:      specs,
	}, nil
}

// outputFlags are the result files every command that drives load writes
// (run, load, suite), and its absolute gates.
type outputFlags struct {
	jsonPath     string
	htmlPath     string
	junitPath    string
	markdownPath string
	benchfmtPath string
	gateExprs    []string
}

func (o *outputFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&o.jsonPath, "json", "", "write the result as JSON (the versioned document, with histograms) to this file")
	fs.StringVar(&o.htmlPath, "html", "", "write a self-contained HTML report with plots to this file")
	fs.StringVar(&o.junitPath, "junit", "", "write JUnit XML (a test case per invariant) to this file")
	fs.StringVar(&o.markdownPath, "markdown", "", "write a Markdown summary (for a pull-request comment) to this file")
	fs.StringVar(&o.benchfmtPath, "benchfmt", "", "write Go benchmark text (benchstat reads it) to this file")
	fs.StringArrayVar(&o.gateExprs, "gate", nil, "fail (exit 1) unless every cell passes these gates, e.g. 'p99<5ms,throughput>20000' (repeatable; see README)")
}

// gates parses the gates: a bad expression is a usage error.
func (o *outputFlags) gates() ([]reports.Gate, error) {
	var out []reports.Gate
	for _, expr := range o.gateExprs {
		gs, err := reports.ParseGates(expr)
		if err != nil {
			return nil, usageErrorf("--gate: %w", err)
		}
		out = append(out, gs...)
	}
	return out, nil
}

// outputs lists the files asked for, with their format.
func (o *outputFlags) outputs() []runner.Output {
	var out []runner.Output
	for _, f := range []runner.Output{
		{Path: o.jsonPath, Format: reports.FormatJSON},
		{Path: o.htmlPath, Format: reports.FormatHTML},
		{Path: o.junitPath, Format: reports.FormatJUnit},
		{Path: o.markdownPath, Format: reports.FormatMarkdown},
		{Path: o.benchfmtPath, Format: reports.FormatBenchFmt},
	} {
		if f.Path != "" {
			out = append(out, f)
		}
	}
	return out
}

// newFlagSet returns a flag set that reports errors through its caller.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parse parses args, then applies the --config file to the flags args did
// not set; -h prints the usage to stdout and returns errHelp.
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
	return applyConfig(fs)
}

// parseFlags is parse for a command that takes no positional argument.
func parseFlags(fs *pflag.FlagSet, args []string, stdout io.Writer, synopsis string) error {
	if err := parse(fs, args, stdout, synopsis); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// errHelp ends a command after -h with exit 0 and no message.
var errHelp = errext.Silent(errext.OK)

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

// redactArgs returns the command line with any password in a Redis URL
// hidden.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if name, val, ok := strings.Cut(a, "="); ok && strings.Contains(val, "://") {
			out[i] = name + "=" + redisenv.Redact(val)
		} else if strings.Contains(a, "://") {
			out[i] = redisenv.Redact(a)
		}
	}
	return out
}
