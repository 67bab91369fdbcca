package redisenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of a spawned redis-server's life.
const (
	// spawnReadyTimeout bounds the wait for a started server to listen.
	spawnReadyTimeout = 5 * time.Second
	// loadTimeout bounds a restarted server's loading of its data.
	loadTimeout = 2 * time.Minute
	// spawnStopTimeout bounds the wait after SIGTERM before SIGKILL.
	spawnStopTimeout = 5 * time.Second
	// spawnAttempts bounds retries when the free port was taken meanwhile.
	spawnAttempts = 3
)

// redisServerBinary is the program spawn looks up on PATH.
const redisServerBinary = "redis-server"

// spawn starts a redis-server from PATH on a free loopback port, with
// persistence off and a temporary --dir, waits until it answers, and checks
// it. A non-empty password is set with --requirepass (tests use it).
func spawn(ctx context.Context, o Options, password string) (*Server, error) {
	bin, err := exec.LookPath(redisServerBinary)
	if err != nil {
		return nil, fmt.Errorf("spawn: %w: no %s on PATH", ErrUnavailable, redisServerBinary)
	}
	major := redisServerMajor(ctx, bin)
	var lastErr error
	for range spawnAttempts {
		p, err := startProcess(ctx, bin, major, password, o.ServerArgs, 0, "")
		if err == nil {
			ro, full, perr := parseURL(loopbackURL(p.port, password), "")
			if perr != nil {
				_ = p.stop()
				return nil, perr
			}
			var srv *Server
			stop := func() error {
				if srv == nil {
					return p.stop()
				}
				srv.procMu.Lock()
				defer srv.procMu.Unlock()
				return srv.proc.stop()
			}
			s, err := connect(ctx, KindSpawn, full, ro, o, stop)
			if err != nil {
				return nil, fmt.Errorf("spawned %s: %w", redisServerBinary, err)
			}
			s.pid = p.cmd.Process.Pid
			s.proc = p
			srv = s
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, lastErr
}

// loopbackURL returns the redis:// URL of 127.0.0.1:port, with password
// when not empty.
func loopbackURL(port int, password string) string {
	u := url.URL{Scheme: "redis", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if password != "" {
		u.User = url.UserPassword("", password)
	}
	return u.String()
}

// errPortTaken says the free port found was taken before redis-server
// bound it; spawn tries another.
var errPortTaken = errors.New("port taken")

var versionRE = regexp.MustCompile(`v=(\d+)\.`)

// redisServerMajor returns the major version `redis-server --version`
// reports, or 0 when it cannot tell.
func redisServerMajor(ctx context.Context, bin string) int {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return 0
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// process is a started redis-server.
type process struct {
	cmd    *exec.Cmd
	port   int
	dir    string
	exited chan struct{} // closed when Wait returned

	// How it was started, for a restart.
	bin      string
	major    int
	password string
	extra    []string
}

// kill stops the process at once (SIGKILL), as a crash would, and waits
// for it; its folder stays.
func (p *process) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startProcess starts redis-server on a free port and waits until it
// accepts connections.
// A port or dir of zero value picks a free port or a new folder; a restart
// passes the old ones.
func startProcess(ctx context.Context, bin string, major int, password string, extra []string, port int, dir string) (*process, error) {
	var err error
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, fmt.Errorf("spawn: find a free port: %w", err)
		}
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "paybench-redis-"); err != nil {
			return nil, fmt.Errorf("spawn: %w", err)
		}
	}
	out, err := os.OpenFile(filepath.Join(dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("spawn: %w", err)
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	if major >= 7 {
		args = append(args, "--enable-debug-command", "local")
	}
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig fires when the *thread* that started the child exits, and Go
	// may end a thread whose goroutine locked it. So one goroutine, locked to
	// its thread, starts the child and waits for it: the thread lives as long
	// as the child does, and dies with the process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, port: port, dir: dir, exited: make(chan struct{}), bin: bin, major: major, password: password, extra: extra}
	startErr := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		startErr <- err
		if err != nil {
			return
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	err = <-startErr
	_ = out.Close()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("spawn: start %s: %w", redisServerBinary, err)
	}
	if err := p.waitListening(ctx); err != nil {
		_ = p.stop()
		return nil, err
	}
	return p, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening polls the port until it accepts a connection, the process
// exits, ctx ends or spawnReadyTimeout passes.
func (p *process) waitListening(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, spawnReadyTimeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		d := net.Dialer{Timeout: 100 * time.Millisecond}
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-p.exited:
			log := p.logTail()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("spawn: %w: %d", errPortTaken, p.port)
			}
			return fmt.Errorf("spawn: %s exited at start (%s): %s", redisServerBinary, p.cmd.ProcessState, log)
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("spawn: %w: %s did not listen on %s within %s", ErrTimeout, redisServerBinary, addr, spawnReadyTimeout)
			}
			return fmt.Errorf("spawn: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of the process's output, on one line.
func (p *process) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, "redis.log"))
	if err != nil {
		return "(no output)"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return oneLine(string(b))
}

// stop sends SIGTERM (and SIGCONT, in case a test stopped the process),
// waits up to spawnStopTimeout, then SIGKILLs it and waits; then removes
// the temporary folder.
func (p *process) stop() error {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		select {
		case <-p.exited:
		case <-time.After(spawnStopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("spawn: remove %s: %w", p.dir, err)
	}
	return nil
}

// Restart kills a spawned server at once (SIGKILL, as a crash would) and
// starts it again on the same port and folder: what it persisted (with
// "--appendonly", "yes" in Options.ServerArgs) survives, the rest is lost.
// Clients reconnect by themselves. Only a spawned server can restart.
func (s *Server) Restart(ctx context.Context) error {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	old := s.proc
	if old == nil {
		return fmt.Errorf("restart: only a spawned server can be restarted, this one is %s", s.Kind)
	}
	old.kill()
	var p *process
	var err error
	for range spawnAttempts {
		p, err = startProcess(ctx, old.bin, old.major, old.password, old.extra, old.port, old.dir)
		if err == nil || !errors.Is(err, errPortTaken) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	s.proc, s.pid = p, p.cmd.Process.Pid
	return s.waitLoaded(ctx)
}

// waitLoaded waits until a restarted server has loaded its data (it
// answers LOADING until then), up to loadTimeout.
func (s *Server) waitLoaded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	for {
		err := s.admin.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "LOADING") && ctx.Err() != nil {
			return fmt.Errorf("restart: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restart: the server did not finish loading its data: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
