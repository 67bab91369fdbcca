// Command peer compares paybench's load engine with redis-benchmark on the
// same work: the stock check-and-deduct script (EVALSHA) on one hot key,
// with the same number of connections or workers and the same pipeline
// depth, back to back against one spawned redis-server. It prints a
// Markdown table of throughput, latency and each backend's ratio to
// redis-benchmark. `make bench-peer` runs it.
//
//	go run ./bench/peer -paybench bin/paybench [-c 50] [-pipelines 16,1] [-duration 10s] [-rounds 1]
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
	"github.com/paybench/paybench/reports/result"
)

// Goals of the comparison, as ratios of redis-benchmark's throughput.
var goals = map[string]float64{impl.Rueidis: 0.90, impl.GoRedis: 0.75}

// stockUnits is the hot key's stock: no run empties it.
const stockUnits = 1 << 40

// options are the command line.
type options struct {
	paybench  string
	bench     string
	conns     int
	pipelines []int
	duration  time.Duration
	rounds    int
	backends  []string
}

// measure is one tool's run.
type measure struct {
	rps      float64
	p50, p99 float64 // milliseconds
}

func main() {
	var o options
	var pipelines, backendList string
	flag.StringVar(&o.paybench, "paybench", "bin/paybench", "the paybench binary to measure")
	flag.StringVar(&o.bench, "redis-benchmark", "redis-benchmark", "the redis-benchmark binary")
	flag.IntVar(&o.conns, "c", 50, "connections of redis-benchmark and workers of paybench")
	flag.StringVar(&pipelines, "pipelines", "16,1", "pipeline depths to compare, comma-separated")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measurement")
	flag.IntVar(&o.rounds, "rounds", 1, "measure each cell this many times, alternating the tools, and report the median")
	flag.StringVar(&backendList, "backends", strings.Join(impl.Backends(), ","), "paybench backends to compare")
	flag.Parse()
	for _, p := range strings.Split(pipelines, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-pipelines: bad depth %q", p))
		}
		o.pipelines = append(o.pipelines, n)
	}
	o.backends = strings.Split(backendList, ",")
	if o.conns < 1 || o.rounds < 1 || o.duration <= 0 {
		fail(errors.New("-c, -rounds and -duration must be positive"))
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "peer:", err)
	os.Exit(1)
}

func run(ctx context.Context, o options, w io.Writer) error {
	if _, err := exec.LookPath(o.bench); err != nil {
		return fmt.Errorf("redis-benchmark not found: %w", err)
	}
	if _, err := os.Stat(o.paybench); err != nil {
		return fmt.Errorf("paybench binary: %w (make build first)", err)
	}
	srv, err := redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindSpawn, Warn: os.Stderr})
	if err != nil {
		return err
	}
	defer srv.Close()
	ropt, err := redis.ParseURL(srv.URL)
	if err != nil {
		return err
	}
	host, port, _ := strings.Cut(ropt.Addr, ":")
	admin := srv.Admin()

	ks := impl.MustKeyspace(fmt.Sprintf("pb:peer:%d:", time.Now().UnixNano()))
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = redisenv.DeletePrefix(cctx, admin, ks)
	}()
	key := impl.StockKey(ks, "item-0")
	sha, err := admin.ScriptLoad(ctx, scripts.StockDeduct).Result()
	if err != nil {
		return fmt.Errorf("SCRIPT LOAD: %w", err)
	}
	if err := admin.Set(ctx, key, stockUnits, 0).Err(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "paybench-peer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintf(w, "bench-peer: %d CPUs, GOMAXPROCS %d, redis %s (spawned, %s), %s per measurement, %d round(s), median shown\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), srv.Version, srv.Redacted(), o.duration, o.rounds)
	fmt.Fprintln(w, "| pipeline | client | ops/s | p50 ms | p99 ms | ratio to redis-benchmark | goal |")
	fmt.Fprintln(w, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, p := range o.pipelines {
		// Calibrate redis-benchmark's request count to the duration.
		cal, err := redisBenchmark(ctx, o, host, port, sha, key, p, int64(20_000*p))
		if err != nil {
			return err
		}
		n := max(int64(cal.rps*o.duration.Seconds()), int64(10_000))
		rows := map[string][]measure{}
		for range o.rounds {
			m, err := redisBenchmark(ctx, o, host, port, sha, key, p, n)
			if err != nil {
				return err
			}
			rows["redis-benchmark"] = append(rows["redis-benchmark"], m)
			for _, b := range o.backends {
				m, err := paybench(ctx, o, srv.URL, b, p, filepath.Join(tmp, "load.json"))
				if err != nil {
					return err
				}
				rows[b] = append(rows[b], m)
			}
		}
		ref := median(rows["redis-benchmark"])
		fmt.Fprintf(w, "| %d | redis-benchmark -c %d -P %d | %.0f | %.3f | %.3f | 1.00 | |\n", p, o.conns, p, ref.rps, ref.p50, ref.p99)
		for _, b := range o.backends {
			m := median(rows[b])
			goal := ""
			if g, ok := goals[b]; ok {
				mark := "✗"
				if m.rps/ref.rps >= g {
					mark = "✓"
				}
				goal = fmt.Sprintf("≥ %.2f %s", g, mark)
			}
			fmt.Fprintf(w, "| %d | paybench %s -c %d --pipeline %d | %.0f | %.3f | %.3f | %.2f | %s |\n", p, b, o.conns, p, m.rps, m.p50, m.p99, m.rps/ref.rps, goal)
		}
	}
	return nil
}

// redisBenchmark runs EVALSHA of the stock script on key, n requests, and
// reads its CSV line.
func redisBenchmark(ctx context.Context, o options, host, port, sha, key string, pipeline int, n int64) (measure, error) {
	args := []string{"-h", host, "-p", port, "-c", strconv.Itoa(o.conns), "-P", strconv.Itoa(pipeline),
		"-n", strconv.FormatInt(n, 10), "--csv", "EVALSHA", sha, "1", key, "1"}
	out, err := exec.CommandContext(ctx, o.bench, args...).Output()
	if err != nil {
		return measure{}, fmt.Errorf("redis-benchmark: %w", err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil || len(recs) < 2 || len(recs[1]) < 7 {
		return measure{}, fmt.Errorf("redis-benchmark printed %q", out)
	}
	var m measure
	for i, dst := range map[int]*float64{1: &m.rps, 4: &m.p50, 6: &m.p99} {
		if *dst, err = strconv.ParseFloat(recs[1][i], 64); err != nil {
			return measure{}, fmt.Errorf("redis-benchmark column %d: %w", i, err)
		}
	}
	return m, nil
}

// paybench runs `paybench load stock.deduct --strategy lua` for backend
// and reads its JSON result.
func paybench(ctx context.Context, o options, url, backend string, pipeline int, out string) (measure, error) {
	cmd := exec.CommandContext(ctx, o.paybench, "load", "stock.deduct", "--strategy", "lua", "--backend", backend,
		"-c", strconv.Itoa(o.conns), "--pipeline", strconv.Itoa(pipeline), "--duration", o.duration.String(),
		"--redis-url", url, "--json", out, "--quiet")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return measure{}, fmt.Errorf("paybench load (%s): %w", backend, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return measure{}, err
	}
	var doc result.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		return measure{}, fmt.Errorf("paybench JSON: %w", err)
	}
	if len(doc.Cells) != 1 {
		return measure{}, fmt.Errorf("paybench JSON: %d cells, want 1", len(doc.Cells))
	}
	c := doc.Cells[0]
	if len(c.Errors) > 0 {
		return measure{}, fmt.Errorf("paybench %s: errors %v", backend, c.Errors)
	}
	return measure{rps: c.ThroughputOps, p50: float64(c.Latency.Corrected.P50) / 1e3, p99: float64(c.Latency.Corrected.P99) / 1e3}, nil
}

// median returns the measure with the median throughput.
func median(ms []measure) measure {
	sorted := append([]measure(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].rps < sorted[j].rps })
	return sorted[len(sorted)/2]
}
