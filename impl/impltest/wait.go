package impltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
)

// waitStrategies are the stock strategies the WAIT suites check: every
// one that sends WAIT (impl.WaitStrategies) and one that does not.
func waitStrategies() []string { return append(impl.WaitStrategies(), impl.StockNaive) }

// waitPurchase opens a backend with cfg, seeds 10 units of a fresh item
// with strategy, buys one and returns the answer.
func waitPurchase(t *testing.T, cfg impl.ConnConfig, open impl.Opener, ks impl.Keyspace, strategy, item string) impl.Deduction {
	t.Helper()
	st := clusterStock(t, cfg, open, ks, strategy)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	if err := st.Set(ctx, item, 10); err != nil {
		t.Fatalf("%s: set: %v", strategy, err)
	}
	d, err := st.Purchase(ctx, item, "p-"+item, 1)
	if err != nil || !d.OK {
		t.Fatalf("%s: purchase: %+v, %v; want OK", strategy, d, err)
	}
	return d
}

// RunWaitCluster checks --wait-replicas on a Redis Cluster whose masters
// have one replica each (env from Cluster): WAIT 1 after a write confirms
// it (Unconfirmed false), WAIT 2 cannot (Unconfirmed true, after the
// time-out), and a strategy that sends no WAIT never says Unconfirmed.
func RunWaitCluster(t *testing.T, env Env, open impl.Opener) {
	for _, strategy := range waitStrategies() {
		t.Run(strategy, func(t *testing.T) {
			ks := env.Keyspace(t)
			sends := impl.WaitSetting{Replicas: 1}.Applies(strategy)
			for _, tc := range []struct {
				replicas    int
				timeout     time.Duration
				unconfirmed bool
			}{
				{replicas: 0},
				{replicas: 1, timeout: time.Second},
				{replicas: 2, timeout: 20 * time.Millisecond, unconfirmed: sends},
			} {
				cfg := env.Conn
				cfg.WaitReplicas, cfg.WaitTimeout = tc.replicas, tc.timeout
				d := waitPurchase(t, cfg, open, ks, strategy, fmt.Sprintf("w%d", tc.replicas))
				if d.Unconfirmed != tc.unconfirmed {
					t.Errorf("WAIT %d after a %s purchase on %s: Unconfirmed %v, want %v", tc.replicas, strategy, env.Name, d.Unconfirmed, tc.unconfirmed)
				}
			}
		})
	}
}

// RunWaitConnection checks that the WAIT after a write runs on the
// write's own connection. It spawns a server and a replica of it, makes
// the replica busy (a script that loops until killed: it neither applies
// nor acknowledges anything meanwhile) and buys with WAIT 1: a WAIT on the
// write's connection must wait for this write and answer 0 (Unconfirmed),
// where a WAIT on any connection without this write would find the
// replica's last acknowledgement enough and answer 1 at once. After the
// script is killed, the next purchase is confirmed.
func RunWaitConnection(t *testing.T, open impl.Opener) {
	master := redistest.Spawn(t)
	u, err := url.Parse(master.URL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	replica := redistest.Spawn(t, "--replicaof", host, port, "--busy-reply-threshold", "100")
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	rep := replica.Admin()
	for {
		info, err := rep.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the replica's link to its master never came up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ks := redistest.Keyspace(t) // only its prefix: the servers are this test's own
	cfg := impl.ConnConfig{URL: master.URL, Password: master.Password, WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond}
	for _, strategy := range impl.WaitStrategies() {
		t.Run(strategy, func(t *testing.T) {
			if d := waitPurchase(t, cfg, open, ks, strategy, strategy+"-before"); d.Unconfirmed {
				t.Fatalf("WAIT 1 with a healthy replica: Unconfirmed")
			}
			// A client of its own, which neither times out nor re-sends
			// the script (a second one would start once the first is
			// killed).
			looper := redis.NewClient(&redis.Options{Addr: rep.(*redis.Client).Options().Addr,
				Password: replica.Password, MaxRetries: -1, ReadTimeout: -1, ContextTimeoutEnabled: true})
			defer looper.Close()
			busy := make(chan error, 1)
			go func() {
				// Runs until SCRIPT KILL: killed is its answer.
				busy <- looper.Eval(ctx, "while true do end", nil).Err()
			}()
			// Past the busy threshold, the replica answers BUSY.
			for {
				err := rep.Ping(ctx).Err()
				if err != nil && strings.HasPrefix(err.Error(), "BUSY") {
					break
				}
				if ctx.Err() != nil {
					t.Fatal("the replica never became busy")
				}
				time.Sleep(10 * time.Millisecond)
			}
			d := waitPurchase(t, cfg, open, ks, strategy, strategy+"-stalled")
			if err := killScript(ctx, rep); err != nil {
				t.Fatalf("SCRIPT KILL on the replica: %v", err)
			}
			<-busy
			if !d.Unconfirmed {
				t.Errorf("WAIT 1 while the replica applied nothing: confirmed, so the WAIT did not count this write's connection")
			}
			if d := waitPurchase(t, cfg, open, ks, strategy, strategy+"-after"); d.Unconfirmed {
				t.Errorf("WAIT 1 after the replica resumed: Unconfirmed")
			}
		})
	}
}

// killScript ends the replica's busy script (SCRIPT KILL), asking again
// while the replica has not noticed it yet.
func killScript(ctx context.Context, rdb redis.UniversalClient) error {
	for {
		err := rdb.ScriptKill(ctx).Err()
		if err == nil || strings.Contains(err.Error(), "NOTBUSY") {
			return nil
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
