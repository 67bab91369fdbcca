package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/reports/result"
)

// TestBadInputsAreRefusedBeforeAnyWork: each problem that can be seen
// before a run is exit 2 at once, with one line naming it.
func TestBadInputsAreRefusedBeforeAnyWork(t *testing.T) {
	srv := redistest.Server(t)
	ctx := context.Background()
	used := redistest.Keyspace(t)
	if err := srv.Admin().Set(ctx, used.Key("someone-elses"), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unwritable --json", []string{"run", "oversell", "--json", "/nonexistent/dir/x.json"}, "cannot write in /nonexistent/dir"},
		{"unwritable suite --html", []string{"suite", "--quick", "--html", "/nonexistent/r.html"}, "cannot write"},
		{"a prefix that holds keys", []string{"run", "oversell", "--prefix", used.Prefix()}, "already holds keys"},
		{"too many workers", []string{"run", "oversell", "-c", "100000"}, "--concurrency must be 1..10000"},
		{"load for no time", []string{"load", "stock.deduct", "--duration", "0"}, "--duration > 0"},
		{"--share-prefix without --prefix", []string{"run", "oversell", "--share-prefix"}, "needs --prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCLI(t, ctx, append(tc.args, "--redis-url", srv.URL)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d with %q", code, stderr, exitUsage, tc.want)
			}
			assertOneLine(t, stderr)
			if strings.Contains(stdout, "VERDICT") || time.Since(start) > 10*time.Second {
				t.Errorf("work was done before the refusal (%s): %q", time.Since(start), stdout)
			}
		})
	}
	if n, _ := srv.Admin().Exists(ctx, used.Key("someone-elses")).Result(); n != 1 {
		t.Error("a refused run deleted a key it did not create")
	}
}

// TestFailedWorkIsNeverAPass runs the seed's flash sale as a user who may
// not run scripts: no PASS, exit 5, and the server's own words on stderr
// and in the JSON.
func TestFailedWorkIsNeverAPass(t *testing.T) {
	srv := redistest.Spawn(t)
	ctx := context.Background()
	if err := srv.Admin().Do(ctx, "ACL", "SETUSER", "u", "on", ">pw", "~pb:*", "+@all", "-@scripting").Err(); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("u", "pw")
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runCLI(t, ctx, "run", "oversell", "--strategy", "lua,sharded", "--buyers", "200", "--redis-url", u.String(), "--json", out)
	if code != exitInconclusive {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitInconclusive, stdout, stderr)
	}
	assertOneLine(t, stderr, "pw@")
	if !strings.Contains(stderr, "NOPERM") || !strings.Contains(stdout, "INCONCLUSIVE") || strings.Contains(stdout, "PASS") {
		t.Errorf("stdout %q\nstderr %q", stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc result.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Cells {
		if c.Verdict != result.Inconclusive || c.Errors["noperm"] == 0 || !strings.Contains(c.ErrorSamples["noperm"], "NOPERM") || c.ThroughputOps != 0 {
			t.Errorf("%s: %s, errors %v, samples %v, %.0f ops/s", c.Key(), c.Verdict, c.Errors, c.ErrorSamples, c.ThroughputOps)
		}
	}
}

// TestAFullServerIsExit3: paybench cannot even claim its prefix.
func TestAFullServerIsExit3(t *testing.T) {
	srv := redistest.Spawn(t, "--maxmemory", "1", "--maxmemory-policy", "noeviction")
	code, _, stderr := runCLI(t, context.Background(), "run", "oversell", "--redis-url", srv.URL)
	if code != exitRedis || !strings.Contains(stderr, "OOM") {
		t.Fatalf("exit %d, stderr %q; want %d naming OOM", code, stderr, exitRedis)
	}
	assertOneLine(t, stderr)
}
