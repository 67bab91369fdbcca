package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv/redistest"
)

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// scrape returns the text of a /metrics page, "" when it cannot be had.
func scrape(url string) string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// sample returns the value of the line of text that starts with series.
func sample(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestMetricsAddrLive: while `paybench load --metrics-addr` runs, its
// /metrics page shows the cell's operation counter rising and its latency
// histogram; the server is gone when the command ends.
func TestMetricsAddrLive(t *testing.T) {
	srv := redistest.Server(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	url := "http://" + addr + "/metrics"
	type ended struct {
		code           int
		stdout, stderr string
	}
	done := make(chan ended, 1)
	go func() {
		code, stdout, stderr := runCLI(t, context.Background(), "load", "stock.deduct", "--redis-url", srv.URL, "--backend", "rueidis",
			"--rate", "1000", "--duration", "4s", "-c", "4", "--metrics-addr", addr, "--quiet")
		done <- ended{code, stdout, stderr}
	}()
	const counter = `paybench_operations_total{backend="rueidis",strategy="lua",workload="stock.deduct"}`
	const hist = `paybench_latency_seconds_bucket{backend="rueidis",latency="corrected",strategy="lua",workload="stock.deduct",le="+Inf"}`
	deadline := time.Now().Add(time.Minute) // a hang guard
	var seen []float64
	var text string
	for len(seen) < 2 && time.Now().Before(deadline) {
		select {
		case e := <-done:
			t.Fatalf("the load ended (exit %d, stderr %q) before its counter was seen rising: %v", e.code, e.stderr, seen)
		case <-time.After(300 * time.Millisecond):
		}
		text = scrape(url)
		v, ok := sample(text, counter)
		if ok && v > 0 && (len(seen) == 0 || v > seen[len(seen)-1]) {
			seen = append(seen, v)
		}
	}
	if len(seen) < 2 {
		t.Fatalf("operation counter not seen rising within a minute: %v (last page %q)", seen, text)
	}
	if n, ok := sample(text, hist); !ok || n <= 0 {
		t.Errorf("no latency histogram with observations on the page: %q", hist)
	}
	for _, want := range []string{"# TYPE paybench_latency_seconds histogram", `paybench_cell_running{backend="rueidis",strategy="lua",workload="stock.deduct"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	e := <-done
	if e.code != exitOK {
		t.Fatalf("exit %d, stderr %q", e.code, e.stderr)
	}
	if !strings.Contains(e.stderr, "metrics: "+url) {
		t.Errorf("stderr does not say where the metrics are: %q", e.stderr)
	}
	if scrape(url) != "" {
		t.Error("the metrics server still answers after the command ended")
	}
	t.Logf("operation counter seen at %v", seen)
}

// TestMetricsAddrBusy: an address that cannot be listened on is a usage
// error, before any work.
func TestMetricsAddrBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, addr := range []string{ln.Addr().String(), "no-port"} {
		code, _, stderr := runCLI(t, context.Background(), "load", "stock.deduct", "--metrics-addr", addr, "--redis", "embedded")
		if code != exitUsage || !strings.Contains(stderr, "--metrics-addr") {
			t.Errorf("--metrics-addr %s: exit %d, stderr %q; want %d and a message naming the flag", addr, code, stderr, exitUsage)
		}
		assertOneLine(t, stderr)
	}
}
