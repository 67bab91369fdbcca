package redisenv

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseRedlock(t *testing.T) {
	for _, tc := range []struct {
		in      string
		n       int
		ok, bad bool
	}{
		{"redlock", DefaultRedlockServers, true, false},
		{"redlock:5", 5, true, false},
		{"redlock:1", 1, true, false},
		{"redlock:15", 15, true, false},
		{"redlock:0", 0, true, true},
		{"redlock:16", 0, true, true},
		{"redlock:x", 0, true, true},
		{"redlock:", 0, true, true},
		{"spawn", 0, false, false},
		{"redlocks", 0, false, false},
		{"", 0, false, false},
	} {
		n, ok, err := ParseRedlock(tc.in)
		if n != tc.n || ok != tc.ok || (err != nil) != tc.bad {
			t.Errorf("ParseRedlock(%q) = %d, %t, %v; want %d, %t, error %t", tc.in, n, ok, err, tc.n, tc.ok, tc.bad)
		}
		if tc.bad && !errors.Is(err, ErrBadKind) {
			t.Errorf("ParseRedlock(%q): error %v does not wrap ErrBadKind", tc.in, err)
		}
		if k, err := ParseKind(tc.in); tc.ok && !tc.bad && (k != KindRedlock || err != nil) {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", tc.in, k, err, KindRedlock)
		}
	}
}

// TestRedlockStartsAndCloseStops: N independent servers, each answering,
// none sharing data with another; Close stops every one and removes its
// folder.
func TestRedlockStartsAndCloseStops(t *testing.T) {
	needRedisServer(t)
	ctx := t.Context()
	srv, err := Provide(ctx, Options{Force: KindRedlock, RedlockServers: 3, Warn: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	all := append([]*Server{srv}, srv.RedlockPeers()...)
	if len(all) != 3 || srv.Kind != KindRedlock {
		t.Fatalf("kind %s, %d servers; want redlock, 3", srv.Kind, len(all))
	}
	var pids []int
	var dirs []string
	seen := map[string]bool{}
	for i, s := range all {
		if seen[s.URL] {
			t.Errorf("server %d shares the address %s", i, s.Redacted())
		}
		seen[s.URL] = true
		pids = append(pids, s.PID())
		dirs = append(dirs, s.proc.dir)
		if err := s.Admin().Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
	}
	for i, s := range all {
		if v, err := s.Admin().Get(ctx, "k").Int(); err != nil || v != i {
			t.Errorf("server %d holds %d, %v: the servers are not independent", i, v, err)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("server %d (pid %d) still runs after Close", i, pid)
		}
		if _, err := os.Stat(dirs[i]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("server %d's folder %s left behind (%v)", i, dirs[i], err)
		}
	}
}
