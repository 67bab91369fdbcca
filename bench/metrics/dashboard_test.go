package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/paybench/paybench/bench"
)

// dashboardPath is the Grafana dashboard that reads these metrics.
const dashboardPath = "../kubernetes/grafana-dashboard.json"

// dashboard is the part of Grafana's dashboard model the test reads.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		GridPos *struct {
			W, H int
		} `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

var (
	metricName = regexp.MustCompile(`paybench_[a-z0-9_]+`)
	// selector is a metric name with its label matchers.
	selector = regexp.MustCompile(`(paybench_[a-z0-9_]+)\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	byClause = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	labelFn  = regexp.MustCompile(`label_values\((paybench_[a-z0-9_]+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)`)
)

// exposedSeries runs a cell through the engine — with failures, so that
// the error counter exists — and returns every series name the exporter
// serves with its label names: a histogram's family name (its native
// form) and its _bucket (with le), _sum and _count series.
func exposedSeries(t *testing.T) map[string]map[string]bool {
	t.Helper()
	x := New()
	cell := x.Cell("stock.deduct", "goredis", "lua")
	boom := errors.New("boom")
	st, err := bench.Run(t.Context(), bench.Config{Concurrency: 2, Requests: 100, Monitor: cell}, func(_ context.Context, w *bench.Worker) error {
		if w.Seq%2 == 0 {
			return boom
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cell.End(st.Dropped)
	mfs, err := x.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	add := func(name string, labels map[string]bool) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for l := range labels {
			out[name][l] = true
		}
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]bool{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
			name := mf.GetName()
			add(name, labels)
			if m.GetHistogram() != nil {
				add(name+"_sum", labels)
				add(name+"_count", labels)
				labels["le"] = true
				add(name+"_bucket", labels)
			}
		}
	}
	for _, name := range Names() {
		if out[name] == nil {
			t.Fatalf("the exporter does not serve %s", name)
		}
	}
	return out
}

// TestDashboard parses the Grafana dashboard and checks that every metric
// it queries is one the exporter serves, with the labels it selects and
// groups by, and that its panels are well formed.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without uid, title or panels: %+v", d)
	}
	series := exposedSeries(t)
	check := func(where, expr string) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q queries no paybench metric", where, expr)
		}
		// Every metric queried is served.
		labels := map[string]bool{}
		for _, n := range names {
			if series[n] == nil {
				t.Errorf("%s: %q queries %s, which the exporter does not serve", where, expr, n)
			}
			for l := range series[n] {
				labels[l] = true
			}
		}
		// Every label selected exists on its metric.
		for _, m := range selector.FindAllStringSubmatch(expr, -1) {
			for _, mm := range matcher.FindAllStringSubmatch(m[2], -1) {
				if !series[m[1]][mm[1]] {
					t.Errorf("%s: %q selects label %q, which %s does not have", where, expr, mm[1], m[1])
				}
			}
		}
		// Every label grouped by exists on a metric of the expression.
		for _, m := range byClause.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !labels[l] {
					t.Errorf("%s: %q groups by %q, which none of %v has", where, expr, l, names)
				}
			}
		}
		for _, m := range labelFn.FindAllStringSubmatch(expr, -1) {
			if !series[m[1]][m[2]] {
				t.Errorf("%s: %q reads label %q, which %s does not have", where, expr, m[2], m[1])
			}
		}
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		where := "panel " + p.Title
		if ids[p.ID] || p.Type == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || len(p.Targets) == 0 {
			t.Errorf("%s: a duplicate id, no type, no size or no query", where)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			check(where+" ("+tg.RefID+")", tg.Expr)
			queries++
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			check("variable "+v.Name, v.Definition)
			queries++
		}
	}
	// The dashboard shows every metric but the histogram's bare _sum and
	// _count (it reads quantiles from the buckets and the native form).
	shown := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				shown[n] = true
			}
		}
	}
	for _, n := range Names() {
		if n == Latency {
			n += "_bucket"
		}
		if !shown[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
	t.Logf("%d panels, %d queries checked", len(d.Panels), queries)
}
