package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/backends"
	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

const version = "0.1.0"

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The scenario's name comes first so that its own flags can be bound.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(stdout, "Usage: paybench run SCENARIO [flags]\n\nScenarios: %s\n(paybench run SCENARIO -h for its flags)\n", strings.Join(scenarios.Names(), ", "))
			return nil
		}
		return usageErrorf("run needs a scenario (one of: %s)", strings.Join(scenarios.Names(), ", "))
	}
	sc, err := scenarios.New(args[0])
	if err != nil {
		return withCode(exitUsage, err)
	}
	var cf commonFlags
	fs := newFlagSet("run")
	cf.bind(fs)
	sc.Flags(fs)
	if err := parse(fs, args[1:], stdout, "paybench run "+sc.Name()+" [flags]\n\n"+sc.Description()); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	ks, err := cf.validate()
	if err != nil {
		return err
	}
	if err := sc.Validate(); err != nil {
		return withCode(exitUsage, err)
	}
	strategies := splitList(cf.strategies)
	if len(strategies) == 0 {
		strategies = scenarios.StrategyNames(sc)
	}
	for _, s := range strategies {
		if _, ok := scenarios.FindStrategy(sc, s); !ok {
			return usageErrorf("unknown strategy %q for %s (known: %s)", s, sc.Name(), strings.Join(scenarios.StrategyNames(sc), ", "))
		}
	}

	srv, err := cf.conn.provide(ctx, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()

	doc := newDocument("run")
	clients := map[string]map[string]string{}
	server := serverFacts(srv)
	var runErr error
	conn := scenarioConn(srv, &cf)
	for _, bname := range splitList(cf.backends) {
		if ctx.Err() != nil {
			break
		}
		be, err := backends.Open(ctx, bname, conn)
		if err != nil {
			runErr = withCode(exitRedis, fmt.Errorf("%s: %w", bname, err))
			break
		}
		clients[bname] = be.Settings()
		for _, sname := range strategies {
			if ctx.Err() != nil {
				break
			}
			cell, err := runCell(ctx, sc, be, srv, ks, &cf, sname, stderr)
			doc.Cells = append(doc.Cells, cell)
			if err != nil && ctx.Err() == nil && redisenv.IsConnectError(err) {
				runErr = withCode(exitRedis, err)
				break
			}
		}
		be.Close()
		if runErr != nil {
			break
		}
	}
	doc.Finished = time.Now().UTC()
	doc.Interrupted = ctx.Err() != nil
	doc.Fairness = bench.Fairness(server, clients)

	if err := reports.Text(stdout, doc); err != nil {
		return err
	}
	if err := finish(ctx, srv, ks, cf.keep, stdout, stderr); err != nil && runErr == nil {
		runErr = err
	}
	gateErr := judgeGates(doc, &cf.outputFlags, stdout)
	if err := writeOutputs(doc, &cf.outputFlags); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if doc.Interrupted {
		return withCode(exitInterrupted, errors.New("interrupted; partial results written"))
	}
	if gateErr != nil {
		return gateErr
	}
	return verdictError(doc)
}

// runCell runs one (backend, strategy) cell under its own keyspace.
func runCell(ctx context.Context, sc scenarios.Scenario, be impl.Backend, srv *redisenv.Server, run impl.Keyspace, cf *commonFlags, strategy string, stderr io.Writer) (result.Cell, error) {
	st, _ := scenarios.FindStrategy(sc, strategy)
	ks, err := impl.NewKeyspace(run.Key(sc.Name(), be.Name(), strategy) + ":")
	if err != nil {
		return result.Cell{}, err
	}
	conn := scenarioConn(srv, cf)
	env := &scenarios.Env{
		Backend: be,
		Open: func(ctx context.Context) (impl.Backend, error) {
			return backends.Open(ctx, be.Name(), conn)
		},
		Admin:  srv.Admin(),
		Keys:   ks,
		Common: scenarios.Common{Concurrency: cf.concurrency, Duration: cf.duration, Seed: cf.seed, Quick: cf.quick},
		Log:    io.Discard,
	}
	cell, err := sc.Run(ctx, env, strategy)
	cell.Scenario, cell.Backend, cell.Strategy, cell.Expect = sc.Name(), be.Name(), strategy, st.Expect
	cell.Params = sc.Params()
	if err != nil {
		cell.Verdict = result.Error
		if errors.Is(err, impl.ErrNotSupported) {
			cell.Verdict = result.Unsupported
		}
		cell.Error = oneLine(err.Error())
		return cell, err
	}
	cell.Judge()
	return cell, nil
}

// finish deletes the run's keys, or keeps them and says where they are.
func finish(ctx context.Context, srv *redisenv.Server, ks impl.Keyspace, keep bool, stdout, stderr io.Writer) error {
	if keep {
		fmt.Fprintf(stdout, "keys kept under prefix %s\n", ks.Prefix())
		if srv.Kind != redisenv.KindURL {
			fmt.Fprintf(stderr, "note: this %s server stops with paybench, and its keys with it; use --redis-url to inspect kept keys\n", srv.Kind)
		}
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := redisenv.DeletePrefix(cctx, srv.Admin(), ks); err != nil {
		return withCode(exitRedis, fmt.Errorf("delete the run's keys under %s: %w", ks.Prefix(), err))
	}
	return nil
}

// verdictError turns the cells' verdicts into the exit code: any FAIL or
// ERROR is 1, else any NOT-REPRODUCED is 4.
func verdictError(doc *result.Document) error {
	code := exitOK
	for _, c := range doc.Cells {
		switch c.Verdict {
		case result.Fail, result.Error:
			code = exitFail
		case result.NotReproduced:
			if code == exitOK {
				code = exitNotReproduced
			}
		}
	}
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
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

// scenarioConn is how scenario cells connect: one go-redis connection per
// worker, as load cells have, since go-redis's default pool (10 per
// GOMAXPROCS) would make workers queue for a connection and skew the
// comparison with rueidis, which multiplexes.
func scenarioConn(srv *redisenv.Server, cf *commonFlags) impl.ConnConfig {
	return impl.ConnConfig{URL: srv.URL, Password: srv.Password, PoolSize: cf.concurrency}
}
