package redisenv

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// TestSpawnCluster spawns a cluster and checks what the rest of paybench
// relies on: 3 masters and 3 replicas that own every slot, an admin client
// that routes by key, per-master key counts, a per-master identity, a
// DeletePrefix that reaches every master, and no node left after Close.
func TestSpawnCluster(t *testing.T) {
	needRedisServer(t)
	if _, err := exec.LookPath(redisCLIBinary); err != nil {
		t.Skip("no redis-cli on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Provide(ctx, Options{Force: KindCluster, Getenv: noenv})
	if err != nil {
		t.Fatalf("spawn cluster: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = s.Close()
		}
	}()
	if !s.Cluster || s.Kind != KindCluster || s.Mode != "cluster" {
		t.Fatalf("server = kind %s cluster %v mode %q, want a cluster", s.Kind, s.Cluster, s.Mode)
	}
	if _, ok := s.Admin().(*redis.ClusterClient); !ok {
		t.Fatalf("Admin() = %T, want *redis.ClusterClient", s.Admin())
	}
	nodes, err := s.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	masters, replicas := 0, 0
	for _, n := range nodes {
		switch n.Role {
		case "master":
			masters++
			if len(n.Slots) == 0 {
				t.Errorf("master %s serves no slot", n.Addr)
			}
		case "replica":
			replicas++
			if n.MasterID == "" {
				t.Errorf("replica %s has no master", n.Addr)
			}
		}
	}
	if masters != ClusterMasters || replicas != ClusterMasters {
		t.Fatalf("topology: %d masters, %d replicas, want %d each: %+v", masters, replicas, ClusterMasters, nodes)
	}

	ks := impl.MustKeyspace("pb:test:cluster:")
	keys := []string{ks.Key("{a}", "x"), ks.Key("{b}", "x"), ks.Key("{c}", "x"), ks.Key("{d}", "x"), ks.Key("{e}", "x"), ks.Key("{f}", "x")}
	for _, k := range keys {
		if err := s.Admin().Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatalf("SET %s through the cluster admin: %v", k, err)
		}
	}
	per, err := s.KeysPerMaster(ctx, ks.Pattern())
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, n := range per {
		total += n
	}
	if total != int64(len(keys)) || len(per) < 2 {
		t.Errorf("KeysPerMaster = %v, want %d keys over several masters", per, len(keys))
	}
	id, up, err := Identity(ctx, s.Admin())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(id, ",") != ClusterMasters-1 || up < 0 {
		t.Errorf("Identity = %q up %d, want %d masters' run_ids", id, up, ClusterMasters)
	}
	n, err := DeletePrefix(ctx, s.Admin(), ks)
	if err != nil || n != int64(len(keys)) {
		t.Errorf("DeletePrefix = %d, %v, want %d", n, err, len(keys))
	}

	var pids []int
	for _, p := range s.nodes {
		pids = append(pids, p.cmd.Process.Pid)
	}
	closed = true
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("node pid %d survived Close", pid)
		}
	}
}

// TestClusterURL checks the seed URL both libraries read, and that a
// cluster URL's password never shows.
func TestClusterURL(t *testing.T) {
	tests := []struct {
		addrs    []string
		password string
		want     string
	}{
		{[]string{"127.0.0.1:1"}, "", "redis://127.0.0.1:1"},
		{[]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, "", "redis://127.0.0.1:1?addr=127.0.0.1%3A2&addr=127.0.0.1%3A3"},
		{[]string{"127.0.0.1:1", "127.0.0.1:2"}, "s3cret", "redis://:s3cret@127.0.0.1:1?addr=127.0.0.1%3A2"},
	}
	for _, tc := range tests {
		got := clusterURL(tc.addrs, tc.password)
		if got != tc.want {
			t.Errorf("clusterURL(%v) = %q, want %q", tc.addrs, got, tc.want)
		}
		co, _, err := parseClusterURL(got, "")
		if err != nil {
			t.Fatalf("parseClusterURL(%q): %v", got, err)
		}
		if len(co.Addrs) != len(tc.addrs) || co.Password != tc.password {
			t.Errorf("parseClusterURL(%q) = addrs %v, want %v", got, co.Addrs, tc.addrs)
		}
		if tc.password != "" && strings.Contains(Redact(got), tc.password) {
			t.Errorf("Redact(%q) shows the password", got)
		}
	}
	if _, _, err := parseClusterURL("unix:///tmp/x.sock", ""); !errors.Is(err, ErrBadURL) {
		t.Errorf("a unix:// cluster URL: err = %v, want ErrBadURL", err)
	}
}

// TestParseClusterNodes reads CLUSTER NODES lines: roles, a replica's
// master, a master's slots without its migrating marks, failure flags.
func TestParseClusterNodes(t *testing.T) {
	raw := "b1 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922 [5462->-a1]\n" +
		"a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460 10923\n" +
		"c1 127.0.0.1:7004@17004 slave a1 0 1 4 connected\n" +
		"d1 127.0.0.1:7005@17005 slave,fail b1 0 1 5 disconnected\n" +
		"garbage\n"
	want := []Node{
		{ID: "a1", Addr: "127.0.0.1:7001", Role: "master", Slots: []string{"0-5460", "10923"}},
		{ID: "b1", Addr: "127.0.0.1:7002", Role: "master", Slots: []string{"5461-10922"}},
		{ID: "c1", Addr: "127.0.0.1:7004", Role: "replica", MasterID: "a1"},
		{ID: "d1", Addr: "127.0.0.1:7005", Role: "replica", MasterID: "b1", Failed: true},
	}
	got := parseClusterNodes(raw)
	if len(got) != len(want) {
		t.Fatalf("parseClusterNodes = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Addr != w.Addr || g.Role != w.Role || g.MasterID != w.MasterID || g.Failed != w.Failed || strings.Join(g.Slots, " ") != strings.Join(w.Slots, " ") {
			t.Errorf("node %d = %+v, want %+v", i, g, w)
		}
	}
}
