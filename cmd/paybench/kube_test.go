package main

import (
	"os"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"
)

// The generators' Job runs a command line `paybench load` accepts: its
// flags parse, and with the environment Kubernetes gives a pod (the
// completion index, PAYBENCH_SHARDS, START_AT) it makes shard I/N of an
// open loop that starts at START_AT.
func TestKubernetesGeneratorArgsParse(t *testing.T) {
	b, err := os.ReadFile("../../bench/kubernetes/generators.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(b, &job); err != nil {
		t.Fatal(err)
	}
	c := job.Spec.Template.Spec.Containers[0]
	start := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	t.Setenv(envShardIndex, "3")
	for _, e := range c.Env {
		if e.Name == envShardCount {
			t.Setenv(envShardCount, e.Value)
		}
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		a = strings.ReplaceAll(a, "$(START_AT)", start.Format(time.RFC3339))
		args[i] = strings.ReplaceAll(a, "$(JOB_COMPLETION_INDEX)", "3")
	}
	if args[0] != "load" {
		t.Fatalf("args %q", args)
	}
	var cf commonFlags
	var lf loadFlags
	fs := newFlagSet("load")
	cf.bind(fs)
	lf.bind(fs)
	if err := fs.Parse(args[2:]); err != nil {
		t.Fatalf("paybench load %s: %v", strings.Join(args[1:], " "), err)
	}
	if _, err := cf.plan("load"); err != nil {
		t.Fatal(err)
	}
	shape, err := lf.shape(&cf, fs.Changed("duration"))
	if err != nil {
		t.Fatal(err)
	}
	if shape.Shard.Index != 3 || shape.Shard.Count != int(*job.Spec.Completions) {
		t.Errorf("shard %s, want 3/%d", shape.Shard, *job.Spec.Completions)
	}
	if !shape.StartAt.Equal(start) || shape.Pacer == nil {
		t.Errorf("start %s (want %s), pacer %v", shape.StartAt, start, shape.Pacer)
	}
}
