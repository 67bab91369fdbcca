package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/reports"
	"github.com/paybench/paybench/reports/result"
)

func TestLoadShapeUsageErrorsExit2(t *testing.T) {
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"stages and rate", []string{"--stages", "1s:10", "--rate", "10"}, nil},
		{"stages and duration", []string{"--stages", "1s:10", "--duration", "2s"}, nil},
		{"stages and requests", []string{"--stages", "1s:10", "--requests", "5"}, nil},
		{"stages not DURATION:RATE", []string{"--stages", "1s"}, nil},
		{"stages without length", []string{"--stages", "0s:100"}, nil},
		{"warm-up from rate 0", []string{"--stages", "1s:10", "--warmup", "1s"}, nil},
		{"find-max without a gate", []string{"--find-max"}, nil},
		{"find-max with rate", []string{"--find-max", "--gate", "p99<5ms", "--rate", "10"}, nil},
		{"find-max with duration", []string{"--find-max", "--gate", "p99<5ms", "--duration", "5s"}, nil},
		{"find-max with shard", []string{"--find-max", "--gate", "p99<5ms", "--shard", "0/2"}, nil},
		{"find-max start above limit", []string{"--find-max", "--gate", "p99<5ms", "--find-max-start", "10", "--find-max-limit", "5"}, nil},
		{"find-max budget below a step", []string{"--find-max", "--gate", "p99<5ms", "--find-max-budget", "1s"}, nil},
		{"zero step", []string{"--find-max", "--gate", "p99<5ms", "--step-duration", "0s"}, nil},
		{"shard index out of range", []string{"--shard", "2/2", "--rate", "10"}, nil},
		{"shard not I/N", []string{"--shard", "first", "--rate", "10"}, nil},
		{"bad shard from the environment", []string{"--rate", "10"}, map[string]string{envShardIndex: "5", envShardCount: "2"}},
		{"start-at not RFC3339", []string{"--start-at", "tomorrow", "--rate", "10"}, nil},
		{"start-at days ahead", []string{"--start-at", time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)}, nil},
		{"start-at and a bad stage", []string{"--start-at", soon, "--stages", "1s:x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, stderr := runCLI(t, context.Background(), append([]string{"load", "stock.deduct"}, tc.args...)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, stderr)
			}
			assertOneLine(t, stderr, "hunter2")
		})
	}
}

// Stages: one cell, its stages' figures add up to the cell's, each
// stage's due operations are its share of the schedule, and the text and
// HTML reports show them.
func TestLoadStages(t *testing.T) {
	url := serverURL(t)
	dir := t.TempDir()
	out, html := filepath.Join(dir, "st.json"), filepath.Join(dir, "st.html")
	code, stdout, stderr := runCLI(t, context.Background(), "load", "stock.deduct", "--redis-url", url, "--backend", "rueidis",
		"--stages", "0s:200,500ms:200,500ms:600", "-c", "2", "--json", out, "--html", html)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	c := readDoc(t, out).Cells[0]
	if len(c.Stages) != 2 || c.Params["stages"] != "0s:200,500ms:200,500ms:600" || c.ElapsedSec != 1 {
		t.Fatalf("stages %+v params %v elapsed %g", c.Stages, c.Params, c.ElapsedSec)
	}
	var ops, due, dropped int64
	for _, s := range c.Stages {
		ops, due, dropped = ops+s.Ops, due+s.Due, dropped+s.Dropped
		if s.Latency.Corrected.Count != s.Ops || s.Histograms[result.HistogramCorrected] == "" && s.Ops > 0 {
			t.Errorf("stage %+v: latency count or histogram missing", s)
		}
	}
	if c.Stages[0].Due != 100 || c.Stages[1].Due != 200 || c.Stages[1].FromRate != 200 || c.Stages[1].ToRate != 600 || c.Stages[1].TargetRate != 400 {
		t.Errorf("stage schedule: %+v", c.Stages)
	}
	if ops != c.Ops || dropped != c.Dropped || due != c.Ops+c.Dropped {
		t.Errorf("stages: ops %d dropped %d due %d; cell: ops %d dropped %d", ops, dropped, due, c.Ops, c.Dropped)
	}
	if !strings.Contains(stdout, "stage 2 0.5–1.0s 200→600/s: target 400/s") {
		t.Errorf("the table does not show stage 2:\n%s", stdout)
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "200→600") || !strings.Contains(string(b), "<th>stage</th>") {
		t.Error("the HTML report shows no stages")
	}
}

// --find-max doubles while every step meets the gates, up to its limit;
// a gate no step can meet makes it halve to its floor and exit 1.
func TestLoadFindMax(t *testing.T) {
	url := serverURL(t)
	doc := loadDoc(t, context.Background(), exitOK, "stock.deduct", "--redis-url", url, "--backend", "rueidis",
		"--find-max", "--gate", "p99<30s", "--step-duration", "300ms", "--find-max-start", "100", "--find-max-limit", "400")
	s := doc.Cells[0].Search
	if s == nil || !s.Found || s.MaxRate != 400 || s.Stopped != "limit" || len(s.Steps) != 3 {
		t.Fatalf("search %+v", s)
	}
	for i, want := range []float64{100, 200, 400} {
		if st := s.Steps[i]; st.Rate != want || !st.Met || st.Ops+st.Dropped != int64(want*0.3) {
			t.Errorf("step %d: %+v, want rate %g met with %g operations due", i, st, want, want*0.3)
		}
	}
	if doc.Cells[0].Ops != s.Steps[2].Ops {
		t.Errorf("the cell's figures are not the best step's: ops %d", doc.Cells[0].Ops)
	}
	var html strings.Builder
	if err := reports.HTML(&html, doc); err != nil || !strings.Contains(html.String(), "highest rate meeting every gate <strong>400 ops/s</strong>") {
		t.Errorf("the HTML report does not show the search (%v)", err)
	}

	doc = loadDoc(t, context.Background(), exitFail, "stock.deduct", "--redis-url", url, "--backend", "rueidis",
		"--find-max", "--gate", "p99<1us", "--step-duration", "200ms", "--find-max-start", "400")
	s = doc.Cells[0].Search
	// The floor is 20 operations per step: 100/s; each failure is
	// confirmed by a second step at the same rate.
	if s == nil || s.Found || s.Stopped != "floor" || len(s.Steps) != 6 || s.Steps[5].Rate != 100 || s.Steps[1].Rate != 400 || s.Steps[0].Met {
		t.Fatalf("search %+v", s)
	}
	if !strings.Contains(s.Steps[0].Failed[0], "p99<1us") {
		t.Errorf("failed gates %q", s.Steps[0].Failed)
	}
}

// Two shards of one load, started together, merge into exactly the whole
// schedule and the verdicts of one generator; merge refuses a shard given
// twice and warns when one is missing.
func TestLoadShardsMerge(t *testing.T) {
	url := serverURL(t)
	dir := t.TempDir()
	start := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	args := []string{"stock.deduct", "--redis-url", url, "--backend", "rueidis", "--rate", "400", "--duration", "500ms", "-c", "2", "--keys", "5", "--start-at", start}
	docs := make(chan *result.Document, 2)
	paths := []string{filepath.Join(dir, "g0.json"), filepath.Join(dir, "g1.json")}
	for i, shard := range []string{"0/2", "1/2"} {
		go func() {
			code, stdout, stderr := runCLI(t, context.Background(), append(append([]string{"load"}, args...), "--shard", shard, "--json", paths[i])...)
			if code != exitOK {
				t.Errorf("shard %s: exit %d\n%s\n%s", shard, code, stdout, stderr)
				docs <- nil
				return
			}
			docs <- readDoc(t, paths[i])
		}()
	}
	for range 2 {
		d := <-docs
		if d == nil {
			t.FailNow()
		}
		c := d.Cells[0]
		if c.Params["start_at"] == "" || c.Ops+c.Dropped != 100 || c.Params["shard_keys"] == "" {
			t.Errorf("shard %s: start_at %q, ops %d dropped %d, shard_keys %q", c.Params["shard"], c.Params["start_at"], c.Ops, c.Dropped, c.Params["shard_keys"])
		}
	}
	merged := filepath.Join(dir, "all.json")
	code, _, stderr := runCLI(t, context.Background(), "merge", paths[0], paths[1], "-o", merged)
	if code != exitOK || strings.Contains(stderr, "warning") {
		t.Fatalf("merge: exit %d, %s", code, stderr)
	}
	all := readDoc(t, merged).Cells[0]
	onePath := filepath.Join(dir, "one.json")
	if code, stdout, stderr := runCLI(t, context.Background(), append(append([]string{"load"}, args[:len(args)-2]...), "--json", onePath)...); code != exitOK {
		t.Fatalf("one generator: exit %d\n%s\n%s", code, stdout, stderr)
	}
	one := readDoc(t, onePath).Cells[0]
	if all.Ops+all.Dropped != 200 || one.Ops+one.Dropped != 200 || all.Verdict != one.Verdict || all.Generators != 2 || all.Params["shards"] != "2" {
		t.Errorf("merged: ops %d dropped %d %s (%d generators, params %v); one: ops %d dropped %d %s",
			all.Ops, all.Dropped, all.Verdict, all.Generators, all.Params, one.Ops, one.Dropped, one.Verdict)
	}

	code, _, stderr = runCLI(t, context.Background(), "merge", paths[0], paths[0])
	if code != exitUsage || !strings.Contains(stderr, "shard 0/2 is in both") {
		t.Errorf("merge of one shard twice: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, context.Background(), "merge", paths[1])
	if code != exitOK || !strings.Contains(stderr, "shards 0/2 are missing") {
		t.Errorf("merge of one shard of two: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, context.Background(), "merge", paths[0], onePath)
	if code != exitUsage || !strings.Contains(stderr, "ran the whole load") {
		t.Errorf("merge of a shard and a whole load: exit %d, %q", code, stderr)
	}
}
