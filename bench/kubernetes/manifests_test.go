package kubernetes

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// manifests decodes every document of every .yaml file of the folder
// strictly into its Kubernetes type: an unknown or misspelt field, or a
// kind the test does not know, fails the test (no cluster needed).
type manifests struct {
	jobs        map[string]*batchv1.Job
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	claims      map[string]*corev1.PersistentVolumeClaim
}

func load(t *testing.T) manifests {
	t.Helper()
	m := manifests{
		jobs:        map[string]*batchv1.Job{},
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		claims:      map[string]*corev1.PersistentVolumeClaim{},
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			strict := func(into any) {
				if err := yaml.UnmarshalStrict(doc, into); err != nil {
					t.Fatalf("%s document %d (%s): %v", f, i+1, meta.Kind, err)
				}
			}
			switch meta.APIVersion + " " + meta.Kind {
			case "batch/v1 Job":
				var j batchv1.Job
				strict(&j)
				m.jobs[j.Name] = &j
			case "apps/v1 Deployment":
				var d appsv1.Deployment
				strict(&d)
				m.deployments[d.Name] = &d
			case "v1 Service":
				var s corev1.Service
				strict(&s)
				m.services[s.Name] = &s
			case "v1 PersistentVolumeClaim":
				var c corev1.PersistentVolumeClaim
				strict(&c)
				m.claims[c.Name] = &c
			default:
				t.Fatalf("%s document %d: unexpected %s %s", f, i+1, meta.APIVersion, meta.Kind)
			}
		}
	}
	return m
}

func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// flag returns the value of --name=VALUE in args.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// mountsClaim reports whether the pod mounts the claim at /results.
func mountsClaim(spec corev1.PodSpec, claim string) bool {
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claim {
			continue
		}
		for _, c := range spec.Containers {
			for _, vm := range c.VolumeMounts {
				if vm.Name == v.Name && vm.MountPath == "/results" {
					return true
				}
			}
		}
	}
	return false
}

func TestManifests(t *testing.T) {
	m := load(t)
	gen, ok := m.jobs["paybench-gen"]
	if !ok {
		t.Fatal("no paybench-gen Job")
	}
	merge, ok := m.jobs["paybench-merge"]
	if !ok {
		t.Fatal("no paybench-merge Job")
	}
	claim := "paybench-results"
	if _, ok := m.claims[claim]; !ok {
		t.Fatalf("no %s PersistentVolumeClaim", claim)
	}

	t.Run("generators", func(t *testing.T) {
		s := gen.Spec
		if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
			t.Error("paybench-gen is not an Indexed Job")
		}
		if s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism || *s.Completions < 1 {
			t.Fatal("completions and parallelism must be set and equal: every generator runs at once")
		}
		if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Error("a generator that failed must not rerun its shard late: restartPolicy Never")
		}
		if len(s.Template.Spec.Containers) != 1 {
			t.Fatalf("%d containers, want 1", len(s.Template.Spec.Containers))
		}
		c := s.Template.Spec.Containers[0]
		if e := env(c, "PAYBENCH_SHARDS"); e == nil || e.Value != strconv.Itoa(int(*s.Completions)) {
			t.Errorf("PAYBENCH_SHARDS must equal completions (%d): %+v", *s.Completions, e)
		}
		if e := env(c, "JOB_COMPLETION_INDEX"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil ||
			e.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			t.Errorf("JOB_COMPLETION_INDEX must come from the completion-index annotation: %+v", e)
		}
		if e := env(c, "START_AT"); e == nil || e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil {
			t.Errorf("START_AT must come from a ConfigMap every generator reads: %+v", e)
		}
		if len(c.Args) < 2 || c.Args[0] != "load" {
			t.Fatalf("args %q: want paybench load ...", c.Args)
		}
		if v, _ := flag(c.Args, "start-at"); v != "$(START_AT)" {
			t.Errorf("--start-at=%q, want $(START_AT)", v)
		}
		if v, _ := flag(c.Args, "json"); !strings.HasPrefix(v, "/results/") || !strings.Contains(v, "$(JOB_COMPLETION_INDEX)") {
			t.Errorf("--json=%q: each generator must write its own file under /results", v)
		}
		if _, ok := flag(c.Args, "shard"); ok {
			t.Error("--shard is set: it must come from JOB_COMPLETION_INDEX/PAYBENCH_SHARDS")
		}
		if !slices.Contains(c.Args, "--quiet") {
			t.Error("no --quiet: a pod's log is not a terminal")
		}
		url, ok := flag(c.Args, "redis-url")
		if !ok {
			t.Fatal("no --redis-url")
		}
		// The URL names the redis Service and its port, and the Service
		// selects the Deployment's pods.
		svc, dep := m.services["redis"], m.deployments["redis"]
		if svc == nil || dep == nil {
			t.Fatal("no redis Service or Deployment")
		}
		if want := "redis://redis:" + strconv.Itoa(int(svc.Spec.Ports[0].Port)); url != want {
			t.Errorf("--redis-url=%s, want %s", url, want)
		}
		for k, v := range svc.Spec.Selector {
			if dep.Spec.Template.Labels[k] != v {
				t.Errorf("the redis Service selects %s=%s, the Deployment's pods do not carry it", k, v)
			}
		}
		if !mountsClaim(s.Template.Spec, claim) {
			t.Errorf("generators do not mount %s at /results", claim)
		}
	})

	t.Run("merge", func(t *testing.T) {
		spec := merge.Spec.Template.Spec
		if spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Error("merge: restartPolicy Never")
		}
		if !mountsClaim(spec, claim) {
			t.Errorf("merge does not mount %s at /results", claim)
		}
		script := strings.Join(append(spec.Containers[0].Command, spec.Containers[0].Args...), " ")
		for _, want := range []string{"paybench merge /results/gen-*.json", "--gate", "exit $status"} {
			if !strings.Contains(script, want) {
				t.Errorf("merge script %q lacks %q", script, want)
			}
		}
	})
}

// The strict decoding the test relies on refuses a misspelt field.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: batch/v1\nkind: Job\nspec:\n  completion: 4\n",
		"apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          arg: [load]\n",
	} {
		var j batchv1.Job
		if err := yaml.UnmarshalStrict([]byte(doc), &j); err == nil {
			t.Errorf("UnmarshalStrict accepted %q", doc)
		}
	}
}
