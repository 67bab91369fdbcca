package faults

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/reports/result"
)

func TestMain(m *testing.M) {
	logging.Disable()
	os.Exit(redistest.MainNoLeaks(m))
}

// fakeProxy records what the network faults asked of it.
type fakeProxy struct {
	latency atomic.Int64
	resets  atomic.Int64
	maxLat  atomic.Int64
}

func (p *fakeProxy) SetLatency(d time.Duration) {
	p.latency.Store(int64(d))
	if int64(d) > p.maxLat.Load() {
		p.maxLat.Store(int64(d))
	}
}
func (p *fakeProxy) ResetAll() int { p.resets.Add(1); return 3 }

// client is a client under test, named as the backends name theirs.
func client(t *testing.T, srv *redisenv.Server, name string) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.ClientName, opt.MaxRetries = name, -1
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func mustParse(t *testing.T, texts ...string) []Spec {
	t.Helper()
	specs, err := ParseAll(texts)
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

func TestFaultsOnASpawnedServer(t *testing.T) {
	srv := redistest.Spawn(t)
	ctx := context.Background()
	under := client(t, srv, "paybench-goredis")
	bystander := client(t, srv, "someone-else")

	t.Run("pause stops the server for its length", func(t *testing.T) {
		r := Start(ctx, Target{Server: srv}, mustParse(t, "pause:400ms@50ms"))
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		if err := bystander.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		waited := time.Since(start)
		log := r.Stop()
		if waited < 250*time.Millisecond {
			t.Errorf("PING answered after %s during a 400ms pause", waited)
		}
		if f := log[0]; f.Count != 1 || f.Method != "SIGSTOP/SIGCONT" || f.Error != "" || f.End-f.Start < 0.35 {
			t.Errorf("log %+v", f)
		}
	})
	t.Run("kill-conns kills only the clients under test", func(t *testing.T) {
		for _, c := range []redis.UniversalClient{under, bystander} {
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		idUnder, _ := under.ClientID(ctx).Result()
		idOther, _ := bystander.ClientID(ctx).Result()
		r := Start(ctx, Target{Server: srv, Clients: []string{"paybench-goredis"}}, mustParse(t, "kill-conns@0s/50ms"))
		time.Sleep(180 * time.Millisecond)
		log := r.Stop()
		if f := log[0]; f.Count < 2 || f.Hits < 1 || f.Error != "" {
			t.Errorf("log %+v", f)
		}
		list, err := srv.Admin().ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(list, "id="+itoa(idUnder)+" ") {
			t.Error("the client under test survived")
		}
		if !strings.Contains(list, "id="+itoa(idOther)+" ") {
			t.Error("a bystander's connection was killed")
		}
	})
	t.Run("oom refuses writes for its length, then restores", func(t *testing.T) {
		before, _ := srv.Admin().ConfigGet(ctx, "maxmemory").Result()
		r := Start(ctx, Target{Server: srv}, mustParse(t, "oom@0s+300ms"))
		time.Sleep(100 * time.Millisecond)
		blob := strings.Repeat("x", 1<<20)
		err := bystander.Set(ctx, "pb:faults:oom", blob, 0).Err()
		log := r.Stop()
		if err == nil || !strings.Contains(err.Error(), "OOM") {
			t.Errorf("a 1 MiB write during oom: %v", err)
		}
		after, _ := srv.Admin().ConfigGet(ctx, "maxmemory").Result()
		if after["maxmemory"] != before["maxmemory"] {
			t.Errorf("maxmemory %v after, %v before", after, before)
		}
		if f := log[0]; f.Count != 1 || f.Error != "" {
			t.Errorf("log %+v", f)
		}
		srv.Admin().Del(ctx, "pb:faults:oom")
	})
	t.Run("stop ends a fault early and resumes the server", func(t *testing.T) {
		r := Start(ctx, Target{Server: srv}, mustParse(t, "pause:1h@0s"))
		time.Sleep(50 * time.Millisecond)
		done := make(chan []result.Fault)
		go func() { done <- r.Stop() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Stop did not end an hour-long pause")
		}
		if err := bystander.Ping(ctx).Err(); err != nil {
			t.Fatalf("the server did not resume: %v", err)
		}
	})
	t.Run("restart", func(t *testing.T) {
		id1, _, _ := redisenv.Identity(ctx, srv.Admin())
		r := Start(ctx, Target{Server: srv}, mustParse(t, "restart@10ms"))
		time.Sleep(50 * time.Millisecond)
		log := r.Stop()
		id2, _, err := redisenv.Identity(ctx, srv.Admin())
		if err != nil || id1 == id2 {
			t.Errorf("run_id %s → %s (%v): no restart", id1, id2, err)
		}
		if f := log[0]; f.Count != 1 || f.Error != "" {
			t.Errorf("log %+v", f)
		}
	})
	t.Run("network faults go to the proxy", func(t *testing.T) {
		p := &fakeProxy{}
		r := Start(ctx, Target{Server: srv, Proxy: p}, mustParse(t, "latency:20ms@0s+100ms", "reset@0s/40ms"))
		time.Sleep(150 * time.Millisecond)
		log := r.Stop()
		if p.maxLat.Load() != int64(20*time.Millisecond) || p.latency.Load() != 0 {
			t.Errorf("latency set to %d, left at %d", p.maxLat.Load(), p.latency.Load())
		}
		if p.resets.Load() < 2 || log[1].Hits != 3*int(p.resets.Load()) {
			t.Errorf("%d resets, log %+v", p.resets.Load(), log[1])
		}
		if d := Describe(log); !strings.Contains(d, "latency:20ms@0s+100ms") || !strings.Contains(d, "reset@0s/40ms ×") {
			t.Errorf("Describe = %q", d)
		}
	})
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		kind    redisenv.Kind
		proxied bool
		err     string
	}{
		{"restart@1s", redisenv.KindSpawn, true, ""},
		{"restart@1s", redisenv.KindURL, true, "only a server paybench spawns"},
		{"pause:1s@1s", redisenv.KindURL, true, ""},
		{"pause:1s@1s", redisenv.KindEmbedded, true, "embedded"},
		{"latency:1ms@1s", redisenv.KindURL, false, "needs the in-process proxy"},
		{"reset@1s", redisenv.KindEmbedded, true, ""},
	} {
		err := Check(mustParse(t, tc.spec), tc.kind, tc.proxied)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Check(%s, %s, %v) = %v, want %q", tc.spec, tc.kind, tc.proxied, err, tc.err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
