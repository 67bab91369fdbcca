package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios/runner"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// runCLI runs the command line with a time-out and returns the exit code
// and both outputs.
func runCLI(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// assertOneLine checks that stderr is one clean line: no stack trace, no
// password.
func assertOneLine(t *testing.T, stderr string, secrets ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Errorf("stderr is not one line: %q", stderr)
	}
	for _, bad := range append([]string{"goroutine ", "panic", ".go:"}, secrets...) {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr contains %q: %q", bad, stderr)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"run without scenario", []string{"run"}},
		{"unknown scenario", []string{"run", "nosuch"}},
		{"unknown flag", []string{"run", "oversell", "--bogus"}},
		{"unknown strategy", []string{"run", "oversell", "--strategy", "nope"}},
		{"unknown backend", []string{"run", "oversell", "--backend", "jedis"}},
		{"zero quantity", []string{"run", "oversell", "--quantity", "0"}},
		{"negative quantity", []string{"run", "oversell", "--quantity", "-2"}},
		{"huge quantity", []string{"run", "oversell", "--quantity", "99999999"}},
		{"bad quantity range", []string{"run", "oversell", "--quantity", "5-2"}},
		{"negative concurrency", []string{"run", "oversell", "-c", "-1"}},
		{"zero concurrency", []string{"run", "oversell", "--concurrency", "0"}},
		{"bad duration", []string{"run", "oversell", "--duration", "soon"}},
		{"negative duration", []string{"run", "oversell", "--duration", "-1s"}},
		{"non-redis URL", []string{"run", "oversell", "--redis-url", "http://user:hunter2@example.com"}},
		{"bad redis source", []string{"run", "oversell", "--redis", "cloud"}},
		{"bad prefix", []string{"run", "oversell", "--prefix", "a{b}"}},
		{"extra argument", []string{"run", "oversell", "extra"}},
		{"--cluster without a URL's cluster", []string{"run", "oversell", "--redis", "spawn", "--cluster"}},
		{"--cluster without a URL", []string{"run", "oversell", "--cluster"}},
		{"cluster seeds without --cluster", []string{"run", "oversell", "--redis-url", "redis://:hunter2@127.0.0.1:1?addr=127.0.0.1:2"}},
		{"bad history mode", []string{"run", "oversell", "--history", "yes"}},
		{"zero history timeout", []string{"run", "oversell", "--history-timeout", "0s"}},
		{"negative wait replicas", []string{"run", "oversell", "--wait-replicas", "-1"}},
		{"zero wait timeout", []string{"run", "oversell", "--wait-replicas", "1", "--wait-timeout", "0s"}},
		{"wait timeout past the read timeout", []string{"run", "oversell", "--wait-replicas", "1", "--wait-timeout", "3s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, context.Background(), tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, stderr)
			}
			if tc.args != nil {
				assertOneLine(t, stderr, "hunter2")
			}
		})
	}
}

func TestHelpExits0(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"run", "-h"}, {"run", "oversell", "-h"}, {"list", "-h"}, {"version", "--help"}} {
		code, stdout, _ := runCLI(t, context.Background(), args...)
		if code != exitOK || !strings.Contains(stdout, "Usage") && !strings.Contains(stdout, "paybench") {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout)
		}
	}
	_, stdout, _ := runCLI(t, context.Background(), "-h")
	if !strings.Contains(stdout, "130") || !strings.Contains(stdout, "NOT-REPRODUCED") {
		t.Errorf("paybench -h does not document exit codes: %q", stdout)
	}
}

func TestListShowsScenariosAndBackends(t *testing.T) {
	code, stdout, _ := runCLI(t, context.Background(), "list")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"oversell", "naive", "sharded", "goredis", "rueidis"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("list lacks %q", want)
		}
	}
}

func TestRedisProblemsExit3(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	// A peer that speaks HTTP, not RESP.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer web.Close()
	// A peer that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct{ name, url string }{
		{"unreachable", "redis://:hunter2@" + closed},
		{"not redis", "redis://:hunter2@" + strings.TrimPrefix(web.URL, "http://")},
		{"silent peer", "redis://:hunter2@" + silent.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCLI(t, context.Background(), "run", "oversell", "--redis-url", tc.url)
			if code != exitRedis {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitRedis, stderr)
			}
			assertOneLine(t, stderr, "hunter2")
			if strings.Contains(stdout, "hunter2") {
				t.Errorf("stdout shows the password: %q", stdout)
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("took %s: a bad server must not hang the run", took)
			}
		})
	}
}

func serverURL(t *testing.T) string {
	t.Helper()
	return redistest.Server(t).URL
}

func TestOversellNaiveReproducedOnBothBackends(t *testing.T) {
	url := serverURL(t)
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runCLI(t, context.Background(), "run", "oversell", "--strategy", "naive", "--redis-url", url, "--json", out)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	doc := readDoc(t, out)
	if len(doc.Cells) != 2 {
		t.Fatalf("%d cells, want 2", len(doc.Cells))
	}
	for _, c := range doc.Cells {
		if c.Verdict != result.Reproduced || c.Figures["oversold_units"] <= 0 {
			t.Errorf("%s/%s: %s (%s)", c.Backend, c.Strategy, c.Verdict, c.Summary)
		}
		if !strings.Contains(c.Summary, "oversold by") {
			t.Errorf("summary %q does not say by how much it oversold", c.Summary)
		}
	}
	if !strings.Contains(stdout, "REPRODUCED") {
		t.Errorf("table lacks the verdict:\n%s", stdout)
	}
}

func TestOversellSafeStrategiesPassWithMultiUnitPurchases(t *testing.T) {
	url := serverURL(t)
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runCLI(t, context.Background(), "run", "oversell", "--strategy", "lua,watch,sharded",
		"--stock", "100", "--quantity", "3", "--buyers", "200", "--redis-url", url, "--json", out)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	doc := readDoc(t, out)
	if len(doc.Cells) != 6 {
		t.Fatalf("%d cells, want 6", len(doc.Cells))
	}
	for _, c := range doc.Cells {
		if c.Verdict != result.Pass {
			t.Errorf("%s/%s: %s (%s) %+v", c.Backend, c.Strategy, c.Verdict, c.Summary, c.Invariants)
		}
		if c.Figures["units_sold"] != 99 || c.Figures["stock_final"] != 1 || c.Figures["orders"] != 33 {
			t.Errorf("%s/%s: sold %v, final %v, orders %v; want 99, 1, 33", c.Backend, c.Strategy,
				c.Figures["units_sold"], c.Figures["stock_final"], c.Figures["orders"])
		}
	}
	if doc.Fairness.Server.Version == "" || doc.Fairness.Server.Kind == "" || doc.Schema != result.SchemaVersion {
		t.Errorf("document lacks server facts: %+v", doc.Fairness.Server)
	}
}

func TestNotReproducedExits4(t *testing.T) {
	url := serverURL(t)
	// One buyer cannot race anyone: the naive bug cannot show.
	code, stdout, stderr := runCLI(t, context.Background(), "run", "oversell", "--strategy", "naive", "--backend", "goredis",
		"--buyers", "1", "--redis-url", url)
	if code != exitNotReproduced || !strings.Contains(stdout, "NOT-REPRODUCED") {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitNotReproduced, stdout, stderr)
	}
}

func TestKeepLeavesKeysThatAgreeWithTheReport(t *testing.T) {
	srv := redistest.Server(t)
	prefix := "pb:keep" + runID() + ":"
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runCLI(t, context.Background(), "run", "oversell", "--strategy", "lua", "--backend", "rueidis",
		"--redis-url", srv.URL, "--prefix", prefix, "--keep", "--json", out, "--quantity", "3")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, prefix) {
		t.Errorf("--keep does not print the prefix:\n%s", stdout)
	}
	ctx := context.Background()
	rdb := srv.Admin()
	t.Cleanup(func() {
		if keys := scanAll(t, rdb, prefix+"*"); len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
	})
	cell := readDoc(t, out).Cells[0]
	stock, err := rdb.Get(ctx, prefix+"oversell:rueidis:lua:stock:{sku-1}").Int64()
	if err != nil {
		t.Fatal(err)
	}
	orders := scanAll(t, rdb, prefix+"oversell:rueidis:lua:order:*")
	if float64(stock) != cell.Figures["stock_final"] || float64(len(orders)) != cell.Figures["orders"] {
		t.Errorf("server: stock %d, %d orders; report: %v, %v", stock, len(orders), cell.Figures["stock_final"], cell.Figures["orders"])
	}
}

func TestRunLeavesOtherKeysAlone(t *testing.T) {
	srv := redistest.Server(t)
	ctx := context.Background()
	rdb := srv.Admin()
	prefix := "pb:mine" + runID() + ":"
	// Neighbours: a sibling prefix, the prefix without its colon, a
	// shorter prefix, and a key outside pb: altogether.
	others := map[string]string{"outside": "1", "pb:other:x": "2", strings.TrimSuffix(prefix, ":"): "3", "pb:": "4", prefix[:len(prefix)-2] + ":x": "5"}
	for k, v := range others {
		if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for k := range others {
			rdb.Del(ctx, k)
		}
	})
	code, stdout, stderr := runCLI(t, ctx, "run", "oversell", "--strategy", "lua", "--redis-url", srv.URL, "--prefix", prefix)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if left := scanAll(t, rdb, prefix+"*"); len(left) != 0 {
		t.Errorf("the run left %d keys under its prefix", len(left))
	}
	for k, v := range others {
		if got, err := rdb.Get(ctx, k).Result(); err != nil || got != v {
			t.Errorf("key %q = %q, %v; want %q", k, got, err, v)
		}
	}
}

func TestInterruptWritesPartialResult(t *testing.T) {
	url := serverURL(t)
	out := filepath.Join(t.TempDir(), "r.json")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	code, stdout, stderr := runCLI(t, ctx, "run", "oversell", "--strategy", "lua", "--backend", "goredis",
		"--buyers", "100000000", "--stock", "1000000000", "--redis-url", url, "--json", out)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitInterrupted, stdout, stderr)
	}
	doc := readDoc(t, out)
	if !doc.Interrupted || len(doc.Cells) != 1 || doc.Cells[0].Ops == 0 {
		t.Fatalf("interrupted=%v cells=%d", doc.Interrupted, len(doc.Cells))
	}
	if !strings.Contains(stdout, "INTERRUPTED") {
		t.Errorf("table does not say the run was interrupted:\n%s", stdout)
	}
}

func TestVerdictExitCodes(t *testing.T) {
	for _, tc := range []struct {
		verdicts []result.Verdict
		want     int
	}{
		{[]result.Verdict{result.Pass, result.Reproduced}, exitOK},
		{[]result.Verdict{result.Pass, result.Fail}, exitFail},
		{[]result.Verdict{result.NotReproduced, result.Pass}, exitNotReproduced},
		{[]result.Verdict{result.NotReproduced, result.Fail}, exitFail},
		{[]result.Verdict{result.Error}, exitFail},
		{[]result.Verdict{result.Unsupported, result.Pass}, exitOK},
		{[]result.Verdict{result.Inconclusive, result.Pass}, exitInconclusive},
		{[]result.Verdict{result.Inconclusive, result.NotReproduced}, exitInconclusive},
		{[]result.Verdict{result.Inconclusive, result.Fail}, exitFail},
		{[]result.Verdict{result.Measured}, exitOK},
	} {
		doc := &result.Document{}
		for _, v := range tc.verdicts {
			doc.Cells = append(doc.Cells, result.Cell{Verdict: v})
		}
		got := exitCode(context.Background(), runner.VerdictError(doc), &bytes.Buffer{})
		if got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.verdicts, got, tc.want)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	got := strings.Join(redactArgs([]string{"paybench", "--redis-url=redis://u:hunter2@h:1", "--redis-url", "rediss://:hunter2@h:2/0"}), " ")
	if strings.Contains(got, "hunter2") {
		t.Fatalf("password survived: %s", got)
	}
}

func readDoc(t *testing.T, path string) *result.Document {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc result.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("invalid JSON in %s: %v", path, err)
	}
	return &doc
}

func scanAll(t *testing.T, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}
