package redisenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// needRedisServer skips the test in -short mode or without redis-server.
func needRedisServer(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("spawns redis-server; skipped in -short mode")
	}
	if _, err := exec.LookPath(redisServerBinary); err != nil {
		t.Skip("no redis-server on PATH")
	}
}

// alive reports whether pid names a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: zombies count as alive
	}
	// pid (comm) state ...: the state follows the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestSpawnDiesWithParent runs itself as a child process that spawns a
// redis-server and exits without Close (as a panicking test does): the
// server must die with it (Pdeathsig).
func TestSpawnDiesWithParent(t *testing.T) {
	if os.Getenv("PAYBENCH_SPAWN_CHILD") == "1" {
		s, err := Provide(context.Background(), Options{Force: KindSpawn, Getenv: noenv})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		dir, _ := s.Admin().ConfigGet(context.Background(), "dir").Result()
		fmt.Printf("spawned %d %s\n", s.PID(), dir["dir"])
		os.Exit(3) // no Close, no deferred functions
	}
	needRedisServer(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSpawnDiesWithParent$")
	cmd.Env = append(os.Environ(), "PAYBENCH_SPAWN_CHILD=1")
	out, err := cmd.Output()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("child: %v, output %q", err, out)
	}
	var (
		pid int
		dir string
	)
	if _, err := fmt.Sscanf(string(out), "spawned %d %s", &pid, &dir); err != nil || pid <= 0 {
		t.Fatalf("child output %q: %v", out, err)
	}
	if strings.Contains(dir, "paybench-redis-") {
		t.Cleanup(func() { _ = os.RemoveAll(dir) }) // nobody else can
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis-server %d outlived its parent", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSpawnStartsAndCloseStops(t *testing.T) {
	needRedisServer(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Provide(ctx, Options{Force: KindSpawn, Getenv: noenv})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = s.Close()
		}
	}()
	if s.Kind != KindSpawn || s.PID() <= 0 || s.Version == "" || s.Mode != "standalone" || s.Password != "" {
		t.Errorf("server = %+v (pid %d)", s, s.PID())
	}
	if !strings.HasPrefix(s.URL, "redis://127.0.0.1:") {
		t.Errorf("URL = %q, want loopback", s.URL)
	}
	rdb := s.Admin()
	if err := rdb.Set(ctx, "pb:spawn:k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "pb:spawn:k").Result(); err != nil || got != "v" {
		t.Errorf("GET = %q, %v", got, err)
	}
	cfg, err := rdb.ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1"} {
		if cfg[name] != want {
			t.Errorf("CONFIG %s = %q, want %q", name, cfg[name], want)
		}
	}
	dir := cfg["dir"]
	if !strings.Contains(dir, "paybench-redis-") {
		t.Errorf("CONFIG dir = %q, want a paybench temporary folder", dir)
	}
	if major := redisServerMajor(ctx, redisServerBinary); major >= 7 {
		if cfg["enable-debug-command"] != "local" {
			t.Errorf("CONFIG enable-debug-command = %q, want local", cfg["enable-debug-command"])
		}
		if err := rdb.Do(ctx, "DEBUG", "SLEEP", "0").Err(); err != nil {
			t.Errorf("DEBUG SLEEP 0: %v", err)
		}
	}
	pid := s.PID()
	if !alive(pid) {
		t.Fatalf("pid %d not alive", pid)
	}

	// Close from several goroutines: it is idempotent and safe.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	closed = true
	for _, err := range errs {
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if alive(pid) {
		t.Errorf("pid %d still alive after Close", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary folder %s still there after Close: %v", dir, err)
	}
	if err := s.Admin().Ping(ctx).Err(); err == nil {
		t.Error("admin client still works after Close")
	}
}

func TestSpawnCloseStoppedServer(t *testing.T) {
	needRedisServer(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Provide(ctx, Options{Force: KindSpawn, Getenv: noenv})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		_ = s.Close()
		t.Fatal(err)
	}
	// A stalled server makes commands time out, not hang.
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = s.Admin().Ping(sctx).Err()
	scancel()
	if err == nil {
		t.Error("PING on a stopped server succeeded")
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if took := time.Since(start); took > spawnStopTimeout {
		t.Errorf("Close of a stopped server took %v (SIGCONT not sent?)", took)
	}
	if alive(pid) {
		t.Errorf("pid %d still alive after Close", pid)
	}
}

func TestSpawnAuth(t *testing.T) {
	needRedisServer(t)
	t.Parallel()
	const secret = "correct-horse-7"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := spawn(ctx, Options{Getenv: noenv}.withDefaults(), secret)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.Contains(s.Redacted(), secret) || !strings.Contains(s.URL, secret) {
		t.Fatalf("URL %q / Redacted %q", s.URL, s.Redacted())
	}
	bare := strings.Replace(s.URL, ":"+secret+"@", "", 1)

	for _, tc := range []struct {
		name string
		opts Options
		want error // nil: connects
	}{
		{"no password", Options{URL: bare}, ErrAuth},
		{"wrong password in URL", Options{URL: strings.Replace(s.URL, secret, "wrong-pw-1", 1)}, ErrAuth},
		{"wrong explicit password", Options{URL: s.URL, Password: "wrong-pw-1"}, ErrAuth},
		{"wrong user", Options{URL: strings.Replace(s.URL, "://:", "://nobody:", 1)}, ErrAuth},
		{"password in URL", Options{URL: s.URL}, nil},
		{"explicit password", Options{URL: bare, Password: secret}, nil},
		{"explicit overrides URL's", Options{URL: strings.Replace(s.URL, secret, "wrong-pw-1", 1), Password: secret}, nil},
		{"password from env", Options{URL: bare, Getenv: func(k string) string {
			if k == EnvPassword {
				return secret
			}
			return ""
		}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Getenv == nil {
				tc.opts.Getenv = noenv
			}
			tc.opts.DialTimeout = 2 * time.Second
			c, err := Provide(ctx, tc.opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Provide: %v", err)
				}
				defer c.Close()
				if c.Kind != KindURL || c.Password != secret || c.Version != s.Version {
					t.Errorf("server = %+v", c)
				}
				if err := c.Admin().Ping(ctx).Err(); err != nil {
					t.Errorf("PING: %v", err)
				}
				return
			}
			if c != nil {
				_ = c.Close()
			}
			if !errors.Is(err, tc.want) || !IsConnectError(err) {
				t.Fatalf("Provide error = %v, want %v", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, "wrong-pw-1") {
				t.Errorf("error %q shows a password", msg)
			}
		})
	}
}

func TestForcedSpawnWithoutBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	start := time.Now()
	_, err := Provide(context.Background(), Options{Force: KindSpawn, Getenv: noenv})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no redis-server on PATH") {
		t.Errorf("Provide error = %v, want ErrUnavailable saying no redis-server on PATH", err)
	}
	// It fails at the PATH look-up, before anything that could wait.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestAutoFallsThroughToEmbedded(t *testing.T) {
	if dockerAvailable(context.Background()) == nil {
		t.Skip("a Docker engine answers: auto would start a container")
	}
	t.Setenv("PATH", t.TempDir())
	var warn bytes.Buffer
	start := time.Now()
	s, err := Provide(context.Background(), Options{Getenv: noenv, Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The Docker probe is the only wait in the chain.
	if took := time.Since(start); took > dockerProbeTimeout+30*time.Second {
		t.Errorf("auto chain took %v", took)
	}
	if s.Kind != KindEmbedded {
		t.Errorf("kind = %q, want embedded", s.Kind)
	}
	if warn.String() != EmbeddedWarning+"\n" {
		t.Errorf("warnings = %q, want only the embedded warning", warn.String())
	}
}

func TestAutoPrefersSpawn(t *testing.T) {
	needRedisServer(t)
	t.Parallel()
	var warn bytes.Buffer
	s, err := Provide(context.Background(), Options{Getenv: noenv, Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Kind != KindSpawn || warn.Len() != 0 {
		t.Errorf("kind = %q, warnings %q; want spawn, none", s.Kind, warn.String())
	}
}

func TestAutoUsesURLFromEnv(t *testing.T) {
	t.Parallel()
	addr := closedPort(t)
	s, err := Provide(context.Background(), Options{DialTimeout: time.Second, Getenv: func(k string) string {
		if k == EnvURL {
			return "redis://" + addr
		}
		return ""
	}})
	if s != nil {
		_ = s.Close()
	}
	// A URL that was given is used or its error returned, never replaced.
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Provide error = %v, want ErrUnreachable", err)
	}
}

func TestRestartKeepsOnlyWhatWasPersisted(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns redis-server")
	}
	for _, tc := range []struct {
		name     string
		args     []string
		survives bool
	}{
		{"no persistence: data lost", nil, false},
		{"aof, fsync always: data kept", []string{"--appendonly", "yes", "--appendfsync", "always"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv, err := Provide(ctx, Options{Force: KindSpawn, ServerArgs: tc.args})
			if err != nil {
				t.Skipf("no redis-server: %v", err)
			}
			defer srv.Close()
			id1, _, err := Identity(ctx, srv.Admin())
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Admin().Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			pid := srv.PID()
			if err := srv.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if srv.PID() == pid {
				t.Error("same process after a restart")
			}
			id2, up, err := Identity(ctx, srv.Admin())
			if err != nil {
				t.Fatal(err)
			}
			if id1 == id2 || up > 5 {
				t.Errorf("run_id %s → %s, uptime %d: not a restart", id1, id2, up)
			}
			n, err := srv.Admin().Exists(ctx, "k").Result()
			if err != nil {
				t.Fatal(err)
			}
			if (n == 1) != tc.survives {
				t.Errorf("key exists=%d after the restart, want survives=%v", n, tc.survives)
			}
		})
	}
}
