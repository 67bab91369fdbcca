package metrics

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/paybench/paybench/bench"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// family returns the gathered family name, or nil.
func family(t *testing.T, x *Exporter, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := x.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// series returns the metric of family name whose labels include want.
func series(t *testing.T, x *Exporter, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mf := family(t, x, name)
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no series of %s with labels %v", name, want)
	return nil
}

// TestCellMatchesTheRun drives real engine runs with a Cell as their
// monitor, scraping all along, and checks that the metrics agree with the
// run's final figures: operations, errors by class, the schedule, dropped
// operations, and histograms with as many observations, in classic and
// native buckets alike.
func TestCellMatchesTheRun(t *testing.T) {
	errBoom := errors.New("boom")
	op := func(ctx context.Context, w *bench.Worker) error {
		time.Sleep(200 * time.Microsecond)
		if w.Seq%7 == 0 {
			return errBoom
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		cfg  bench.Config
	}{
		{"closed loop", bench.Config{Concurrency: 4, Requests: 800}},
		{"open loop", bench.Config{Concurrency: 2, MaxWorkers: 16, Duration: 600 * time.Millisecond, Pacer: bench.ConstantPacer{Rate: 3000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := New()
			cell := x.Cell("stock.deduct", "rueidis", tc.name)
			cfg := tc.cfg
			cfg.Monitor = cell
			cfg.Interval = 50 * time.Millisecond
			cfg.Classify = func(error) string { return "other" }

			// Scrape while the run goes: the race detector checks the
			// engine's merger against the scrapes.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
						if _, err := x.Gatherer().Gather(); err != nil {
							t.Errorf("gather during the run: %v", err)
							return
						}
					}
				}
			}()
			st, err := bench.Run(t.Context(), cfg, op)
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			labels := map[string]string{LabelWorkload: "stock.deduct", LabelBackend: "rueidis", LabelStrategy: tc.name}
			if got := series(t, x, Running, labels).GetGauge().GetValue(); got != 1 {
				t.Errorf("%s = %v while the cell runs, want 1", Running, got)
			}
			cell.End(st.Dropped)

			if got := series(t, x, Operations, labels).GetCounter().GetValue(); int64(got) != st.Ops {
				t.Errorf("%s = %v, the run measured %d", Operations, got, st.Ops)
			}
			errLabels := map[string]string{LabelStrategy: tc.name, LabelClass: "other"}
			if got := series(t, x, Errors, errLabels).GetCounter().GetValue(); int64(got) != st.Errors["other"] || got == 0 {
				t.Errorf("%s = %v, the run counted %d", Errors, got, st.Errors["other"])
			}
			sched := series(t, x, Scheduled, labels).GetCounter().GetValue()
			dropped := series(t, x, Dropped, labels).GetCounter().GetValue()
			if cfg.Pacer != nil && int64(sched) != st.Ops+st.Dropped || int64(dropped) != st.Dropped {
				t.Errorf("scheduled %v, dropped %v; the run ran %d and dropped %d", sched, dropped, st.Ops, st.Dropped)
			}
			if got := series(t, x, Running, labels).GetGauge().GetValue(); got != 0 {
				t.Errorf("%s = %v after End, want 0", Running, got)
			}
			for _, measure := range []string{MeasureCorrected, MeasureUncorrected} {
				h := series(t, x, Latency, map[string]string{LabelStrategy: tc.name, LabelMeasure: measure}).GetHistogram()
				if int64(h.GetSampleCount()) != st.Ops {
					t.Errorf("%s: %d observations, the run measured %d", measure, h.GetSampleCount(), st.Ops)
				}
				// The mean is the HDR histogram's, within its resolution.
				hdr := st.Corrected
				if measure == MeasureUncorrected {
					hdr = st.Uncorrected
				}
				if mean, want := h.GetSampleSum()/float64(h.GetSampleCount()), hdr.Mean()/1e6; math.Abs(mean-want) > 0.01*want+1e-6 {
					t.Errorf("%s: mean %gs, HDR's %gs", measure, mean, want)
				}
				// Classic buckets: cumulative, at most the count; every
				// latency here is under 10 s, so the last holds all.
				bs := h.GetBucket()
				if len(bs) != len(ClassicBuckets) || bs[len(bs)-1].GetCumulativeCount() != h.GetSampleCount() {
					t.Errorf("%s: classic buckets %v, count %d", measure, bs, h.GetSampleCount())
				}
				// Native buckets: the schema, and as many observations.
				if h.GetSchema() != NativeSchema || len(h.GetPositiveSpan()) == 0 {
					t.Fatalf("%s: no native buckets (schema %d, spans %v)", measure, h.GetSchema(), h.GetPositiveSpan())
				}
				var n, c int64
				for _, d := range h.GetPositiveDelta() {
					c += d
					n += c
				}
				if n != st.Ops {
					t.Errorf("%s: native buckets hold %d observations, want %d", measure, n, st.Ops)
				}
			}
		})
	}
}

// TestNativeIndex checks the native bucket boundaries: bucket i holds
// (2^((i-1)/8), 2^(i/8)].
func TestNativeIndex(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int
	}{
		{1, 0}, {1.0001, 1}, {1.05, 1}, {1.1, 2}, {2, 8}, {0.5, -8}, {0.001, -79}, {0.0009, -80},
	} {
		if got := nativeIndex(tc.v); got != tc.want {
			t.Errorf("nativeIndex(%g) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

// TestServer scrapes a Server over HTTP in the text format: the cell's
// counter and its latency histogram's classic buckets are there.
func TestServer(t *testing.T) {
	x := New()
	cell := x.Cell("oversell", "goredis", "lua")
	st, err := bench.Run(t.Context(), bench.Config{Concurrency: 2, Requests: 500, Monitor: cell}, func(context.Context, *bench.Worker) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	cell.End(st.Dropped)
	srv, err := Listen("127.0.0.1:0", x)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", srv.URL(), resp.StatusCode, err)
	}
	text := string(body)
	for _, want := range []string{
		`paybench_operations_total{backend="goredis",strategy="lua",workload="oversell"} 500`,
		`paybench_latency_seconds_bucket{backend="goredis",latency="corrected",strategy="lua",workload="oversell",le="+Inf"} 500`,
		`paybench_latency_seconds_count{backend="goredis",latency="uncorrected",strategy="lua",workload="oversell"} 500`,
		"# TYPE paybench_latency_seconds histogram",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// The text parses as the exposition format.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Errorf("scrape does not parse: %v", err)
	}
}

// TestListenBadAddress: a bad or busy address fails at once.
func TestListenBadAddress(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", New())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, addr := range []string{"nohostport", srv.Addr(), "127.0.0.1:99999"} {
		if s, err := Listen(addr, New()); err == nil {
			s.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		} else if !strings.Contains(err.Error(), "metrics address") {
			t.Errorf("Listen(%q): %v", addr, err)
		}
	}
}
