package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/reports/errext"
	"github.com/paybench/paybench/scenarios"
)

// exampleConfig is the example file the README points to.
const exampleConfig = "testdata/config-example.yaml"

// writeConfig writes body to a file named name in a temporary directory.
func writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadFlagSet is load's flag set, as cmdLoad binds it.
func loadFlagSet() (*pflag.FlagSet, *commonFlags, *loadFlags) {
	var cf commonFlags
	var lf loadFlags
	fs := newFlagSet("load")
	cf.bind(fs)
	lf.bind(fs)
	return fs, &cf, &lf
}

// runFlagSet is run oversell's flag set, as cmdRun binds it.
func runFlagSet(t *testing.T) (*pflag.FlagSet, *commonFlags) {
	t.Helper()
	sc, err := scenarios.New("oversell")
	if err != nil {
		t.Fatal(err)
	}
	var cf commonFlags
	fs := newFlagSet("run")
	cf.bind(fs)
	sc.Flags(fs)
	return fs, &cf
}

// TestConfigApplies: a config file sets the flags the command line did
// not, its command's section over its top level, and the command line
// wins over both — a repeatable flag given on the command line replaces
// the file's list.
func TestConfigApplies(t *testing.T) {
	t.Parallel()
	jsonFile := writeConfig(t, "ci.json", `{"concurrency": 3, "duration": "1500ms", "keep": true, "fault": ["pause:100ms@1s"], "load": {"pipeline": 4}}`)
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, cf *commonFlags, lf *loadFlags)
	}{
		{"the example, load", []string{"--config", exampleConfig}, func(t *testing.T, cf *commonFlags, lf *loadFlags) {
			if cf.concurrency != 8 || lf.rate != "2000" || cf.duration != 2*time.Second || lf.keys != 100 || lf.keyDist != "zipf" || !lf.quiet ||
				cf.backends != "goredis,rueidis" || cf.seed != 42 || cf.jsonPath != "load.json" ||
				!slices.Equal(cf.gateExprs, []string{"p99<250ms", "error_rate<=0.1%"}) {
				t.Errorf("flags %+v %+v", *cf, *lf)
			}
		}},
		{"the example, the command line wins", []string{"--rate", "3000", "--config", exampleConfig, "-c", "4", "--gate", "p99<1s", "--quiet=false"}, func(t *testing.T, cf *commonFlags, lf *loadFlags) {
			if cf.concurrency != 4 || lf.rate != "3000" || lf.quiet || !slices.Equal(cf.gateExprs, []string{"p99<1s"}) || lf.keys != 100 {
				t.Errorf("flags %+v %+v", *cf, *lf)
			}
		}},
		{"JSON", []string{"--config", jsonFile}, func(t *testing.T, cf *commonFlags, lf *loadFlags) {
			if cf.concurrency != 3 || cf.duration != 1500*time.Millisecond || !cf.keep || lf.pipeline != 4 || !slices.Equal(cf.faults, []string{"pause:100ms@1s"}) {
				t.Errorf("flags %+v %+v", *cf, *lf)
			}
		}},
		{"no config", nil, func(t *testing.T, cf *commonFlags, lf *loadFlags) {
			if cf.concurrency != 50 || lf.rate != "" {
				t.Errorf("defaults changed: %+v %+v", *cf, *lf)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, cf, lf := loadFlagSet()
			if err := parseFlags(fs, tc.args, io.Discard, "load"); err != nil {
				t.Fatal(err)
			}
			tc.check(t, cf, lf)
		})
	}
	t.Run("the example, run", func(t *testing.T) {
		fs, cf := runFlagSet(t)
		if err := parseFlags(fs, []string{"--config", exampleConfig}, io.Discard, "run"); err != nil {
			t.Fatal(err)
		}
		if cf.concurrency != 16 || cf.jsonPath != "oversell.json" || !slices.Equal(cf.gateExprs, []string{"error_rate<=0.1%"}) || cf.seed != 42 {
			t.Errorf("flags %+v", *cf)
		}
	})
}

// TestConfigRefused: what a config file cannot say is a usage error
// naming the file and the key, before any work.
func TestConfigRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		run        bool // run oversell's flags instead of load's
		want       string
	}{
		{"unknown key", "concurency: 5\n", false, `unknown key "concurency": not a flag of paybench load`},
		{"a load flag for run", "rate: 5\n", true, `unknown key "rate": not a flag of paybench run`},
		{"config in config", "config: other.yaml\n", false, `unknown key "config"`},
		{"unknown key in the section", "load:\n  bogus: 1\n", false, `unknown key "bogus"`},
		{"bad value", "concurrency: many\n", false, `concurrency: invalid argument "many"`},
		{"bad duration", "duration: 10\n", false, `duration: invalid argument "10"`},
		{"list for a single value", "concurrency: [1, 2]\n", false, "concurrency: a list, for a flag that takes one value"},
		{"no value", "concurrency:\n", false, "concurrency: no value"},
		{"a mapping for a value", "seed: {a: 1}\n", false, "seed: want a string, a number or a boolean"},
		{"not a mapping", "- concurrency\n", false, "want a mapping of flag names to values"},
		{"section not a mapping", "load: 5\n", false, `section "load": want a mapping`},
		{"not YAML", "concurrency: [1\n", false, "not YAML or JSON"},
		{"duplicate key", "seed: 1\nseed: 2\n", false, `not valid: line 2: mapping key "seed" already defined at line 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "c.yaml", tc.body)
			var fs *pflag.FlagSet
			if tc.run {
				fs, _ = runFlagSet(t)
			} else {
				fs, _, _ = loadFlagSet()
			}
			err := parseFlags(fs, []string{"--config", path}, io.Discard, "x")
			code, _ := errext.Code(err)
			if err == nil || code != errext.Usage || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--config "+path) {
				t.Errorf("error %v (exit %d), want exit 2 saying %q", err, code, tc.want)
			}
		})
	}
	fs, _, _ := loadFlagSet()
	err := parseFlags(fs, []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, io.Discard, "x")
	if code, _ := errext.Code(err); code != errext.Usage || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

// TestConfigLoad runs `paybench load --config` on a server: the cells
// run with the file's settings (the command line's where both say), and
// an unknown key ends the command with exit 2 and one line.
func TestConfigLoad(t *testing.T) {
	srv := redistest.Server(t)
	out := filepath.Join(t.TempDir(), "out.json")
	code, stdout, stderr := runCLI(t, context.Background(), "load", "stock.deduct", "--config", exampleConfig,
		"--redis-url", srv.URL, "--duration", "1s", "--json", out, "--gate", "error_rate<=0.1%")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	doc := readDoc(t, out)
	if len(doc.Cells) != 2 {
		t.Fatalf("%d cells, want one per backend of the file", len(doc.Cells))
	}
	for _, c := range doc.Cells {
		p := c.Params
		if p["concurrency"] != "8" || p["rate"] != "2000/s" || p["keys"] != "100" || !strings.HasPrefix(p["key_dist"], "zipf") || p["seed"] != "42" || p["duration"] != "1s" {
			t.Errorf("%s: params %v, want the file's (and --duration 1s)", c.Backend, p)
		}
	}
	bad := writeConfig(t, "bad.yaml", "rate: 100\nconcurency: 4\n")
	code, _, stderr = runCLI(t, context.Background(), "load", "stock.deduct", "--config", bad, "--redis-url", srv.URL)
	if code != exitUsage || !strings.Contains(stderr, `unknown key "concurency"`) {
		t.Errorf("unknown key: exit %d, stderr %q", code, stderr)
	}
	assertOneLine(t, stderr)
}

// TestConfigSuite: the suite's own section applies to `paybench suite`.
func TestConfigSuite(t *testing.T) {
	srv := redistest.Server(t)
	cfg := writeConfig(t, "suite.yaml", "backend: rueidis\nload:\n  rate: 5\nsuite:\n  scenario: none\n  operation: stock.deduct\n  strategy: lua\n  load-duration: 200ms\n  quiet: true\n")
	out := filepath.Join(t.TempDir(), "out.json")
	code, stdout, stderr := runCLI(t, context.Background(), "suite", "--config", cfg, "--redis-url", srv.URL, "--json", out)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	doc := readDoc(t, out)
	if len(doc.Cells) != 1 || doc.Cells[0].Key() != "stock.deduct/rueidis/lua" || doc.Cells[0].Params["duration"] != "200ms" {
		t.Errorf("cells %v, want one 200ms load of stock.deduct on rueidis", doc.Cells)
	}
	if stderr != "" {
		t.Errorf("stderr %q: quiet: true did not apply", stderr)
	}
}
