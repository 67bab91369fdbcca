package impltest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
)

// Do sends one raw command through b's own client library and returns the
// error exactly as the library returned it (nil on success). The contracts
// offer no raw command, so each backend's test supplies one.
type Do func(ctx context.Context, b impl.Backend, args ...string) error

// classifyCase is what each classification test receives.
type classifyCase struct {
	env     Env
	open    impl.Opener
	backend impl.Backend
	do      Do
}

// classifyTests provoke one error each on a real server.
var classifyTests = []struct {
	name string
	run  func(t *testing.T, c classifyCase)
}{
	{"Nil", testClassifyNil},
	{"UnknownCommand", testClassifyUnknownCommand},
	{"WrongType", testClassifyWrongType},
	{"ScriptRuntime", testClassifyScriptRuntime},
	{"NoPerm", testClassifyNoPerm},
	{"WrongPass", testClassifyWrongPass},
	{"OOM", testClassifyOOM},
	{"Timeout", testClassifyTimeout},
	{"ConnectionRefused", testClassifyConnectionRefused},
	{"ConnectionKilled", testClassifyConnectionKilled},
}

// RunClassify checks the backend's impl.Backend.Classify against errors the
// server really returns — unknown command, WRONGTYPE (from a raw command,
// from a stock operation that wraps it, from inside a Lua script), NOPERM
// (an ACL user without @scripting running the lua stock strategy),
// WRONGPASS, OOM (maxmemory lowered, only on a server the test binary
// spawned), a context deadline, a refused connection and a connection
// killed while a command waited for its reply — and that the error keeps
// the server's own words (impl.Reply). do sends a raw command through the
// backend's library.
func RunClassify(t *testing.T, env Env, open impl.Opener, do Do) {
	t.Helper()
	t.Logf("classification conformance on %s", env.Name)
	c := classifyCase{env: env, open: open, backend: openBackend(t, env, open), do: do}
	for _, tt := range classifyTests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
	}
}

// wantClass checks that err is not nil, that the backend and impl.Classify
// both classify it as class, and, when words is not empty, that the Redis reply it carries
// starts with words.
func wantClass(t *testing.T, b impl.Backend, err error, class, words string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one of class %q", class)
	}
	t.Logf("%T: %v", err, err)
	if got := b.Classify(err); got != class {
		t.Errorf("Classify(%v) = %q, want %q", err, got, class)
	}
	// The engine's library-neutral default names the same cause.
	if got := impl.Classify(err); got != class {
		t.Errorf("impl.Classify(%v) = %q, want %q", err, got, class)
	}
	if words == "" {
		return
	}
	reply, ok := impl.Reply(err)
	if !ok || !strings.HasPrefix(reply, words) {
		t.Errorf("Reply(%v) = %q, %v; want the server's words starting %q", err, reply, ok, words)
	}
}

func testClassifyNil(t *testing.T, c classifyCase) {
	if got := c.backend.Classify(nil); got != "" {
		t.Errorf("Classify(nil) = %q, want \"\"", got)
	}
}

func testClassifyUnknownCommand(t *testing.T, c classifyCase) {
	err := c.do(testContext(t), c.backend, "PAYBENCH-NO-SUCH-COMMAND", "arg")
	wantClass(t, c.backend, err, impl.ClassUnknownCommand, "ERR unknown command")
	if impl.MayHaveApplied(impl.ClassUnknownCommand) {
		t.Errorf("an unknown command may have applied, says Outcome")
	}
}

func testClassifyWrongType(t *testing.T, c classifyCase) {
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	key := ks.Key("list")
	if err := c.env.Admin.RPush(ctx, key, "x").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	wantClass(t, c.backend, c.do(ctx, c.backend, "INCR", key), impl.ClassWrongType, "WRONGTYPE")

	// The same reply, wrapped (%w) by a stock operation (GET, then SET).
	if err := c.env.Admin.RPush(ctx, impl.StockKey(ks, "item"), "x").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	s, err := c.backend.(impl.StockBackend).Stock(impl.StockNaive, impl.StockOptions{Keys: ks})
	if err != nil {
		t.Fatalf("Stock(naive): %v", err)
	}
	_, err = s.Deduct(ctx, "item", 1)
	wantClass(t, c.backend, err, impl.ClassWrongType, "WRONGTYPE")
}

func testClassifyScriptRuntime(t *testing.T, c classifyCase) {
	if c.env.Kind == redisenv.KindEmbedded {
		t.Skip("the embedded server (miniredis) does not mark errors raised inside a script as Redis does")
	}
	ctx := testContext(t)
	ks := c.env.Keyspace(t)
	// The stock script's GET meets a list: Redis reports the WRONGTYPE
	// raised inside the script, which is a script failure (its writes
	// before the failure would stay).
	if err := c.env.Admin.RPush(ctx, impl.StockKey(ks, "item"), "x").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	s, err := c.backend.(impl.StockBackend).Stock(impl.StockLua, impl.StockOptions{Keys: ks})
	if err != nil {
		t.Fatalf("Stock(lua): %v", err)
	}
	_, err = s.Deduct(ctx, "item", 1)
	wantClass(t, c.backend, err, impl.ClassScript, "WRONGTYPE")
	if !impl.MayHaveApplied(impl.ClassScript) {
		t.Errorf("a failed script surely did not apply, says Outcome")
	}
}

// aclUser creates an ACL user allowed every command but @scripting on the
// keys under ks, and returns a ConnConfig that connects as it; the user is
// deleted when the test ends. It skips the test when the server has no
// ACLs or refuses to create users.
func aclUser(t *testing.T, env Env, ks impl.Keyspace) impl.ConnConfig {
	t.Helper()
	if env.Kind == redisenv.KindEmbedded {
		t.Skip("the embedded server (miniredis) has no ACL users")
	}
	ctx := testContext(t)
	user := "pb-classify-" + randomHex(6)
	pass := randomHex(12)
	err := env.Admin.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pass, "~"+ks.Pattern(), "+@all", "-@scripting").Err()
	if err != nil {
		t.Skipf("cannot create an ACL user on %s: %v", env.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := env.Admin.Do(ctx, "ACL", "DELUSER", user).Err(); err != nil {
			t.Errorf("ACL DELUSER %s: %v", user, err)
		}
	})
	u, err := url.Parse(env.Conn.URL)
	if err != nil {
		t.Fatalf("parse %s: %v", redisenv.Redact(env.Conn.URL), err)
	}
	u.User = url.UserPassword(user, pass)
	return impl.ConnConfig{URL: u.String(), Password: pass}
}

func testClassifyNoPerm(t *testing.T, c classifyCase) {
	ks := c.env.Keyspace(t)
	conn := aclUser(t, c.env, ks)
	ctx := testContext(t)
	b, err := c.open(ctx, conn)
	if err != nil {
		t.Fatalf("open as the ACL user: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	s, err := b.(impl.StockBackend).Stock(impl.StockLua, impl.StockOptions{Keys: ks})
	if err != nil {
		t.Fatalf("Stock(lua): %v", err)
	}
	_, err = s.Deduct(ctx, "item", 1)
	wantClass(t, b, err, impl.ClassNoPerm, "NOPERM")
	if impl.MayHaveApplied(impl.ClassNoPerm) {
		t.Errorf("a refused command may have applied, says Outcome")
	}
}

func testClassifyWrongPass(t *testing.T, c classifyCase) {
	u, err := url.Parse(c.env.Conn.URL)
	if err != nil {
		t.Fatalf("parse %s: %v", redisenv.Redact(c.env.Conn.URL), err)
	}
	u.User = url.UserPassword("pb-no-such-user-"+randomHex(4), "wrong")
	b, err := c.open(testContext(t), impl.ConnConfig{URL: u.String(), Password: "wrong"})
	if err == nil {
		_ = b.Close()
		t.Skipf("%s accepted an unknown user", c.env.Name)
	}
	wantClass(t, c.backend, err, impl.ClassAuth, "")
}

func testClassifyOOM(t *testing.T, c classifyCase) {
	if c.env.Kind != redisenv.KindSpawn {
		t.Skipf("lowers maxmemory: only on a redis-server the test binary spawned, not on %s", c.env.Kind)
	}
	ctx := testContext(t)
	admin := c.env.Admin
	cfg, err := admin.ConfigGet(ctx, "maxmemory*").Result()
	if err != nil {
		t.Fatalf("CONFIG GET: %v", err)
	}
	if p := cfg["maxmemory-policy"]; p != "noeviction" {
		t.Skipf("maxmemory-policy is %q: lowering maxmemory would evict other tests' keys", p)
	}
	old := cfg["maxmemory"]
	if _, err := strconv.ParseInt(old, 10, 64); err != nil {
		t.Fatalf("CONFIG GET maxmemory = %q", old)
	}
	ks := c.env.Keyspace(t) // its cleanup (DEL) runs after maxmemory is back
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := admin.ConfigSet(ctx, "maxmemory", old).Err(); err != nil {
			t.Errorf("restore maxmemory %s: %v", old, err)
		}
	})
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatalf("CONFIG SET maxmemory 1: %v", err)
	}
	words := "OOM command not allowed"
	wantClass(t, c.backend, c.do(ctx, c.backend, "SET", ks.Key("raw"), "v"), impl.ClassOOM, words)
	s, err := c.backend.(impl.StockBackend).Stock(impl.StockNaive, impl.StockOptions{Keys: ks})
	if err != nil {
		t.Fatalf("Stock(naive): %v", err)
	}
	wantClass(t, c.backend, s.Set(ctx, "item", 10), impl.ClassOOM, words)
}

func testClassifyTimeout(t *testing.T, c classifyCase) {
	ks := c.env.Keyspace(t)
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	// BLPOP waits up to 5 s on an empty list; the deadline ends it first.
	err := c.do(ctx, c.backend, "BLPOP", ks.Key("empty"), "5")
	wantClass(t, c.backend, err, impl.ClassTimeout, "")
	if !impl.MayHaveApplied(impl.ClassTimeout) {
		t.Errorf("a timed-out command surely did not apply, says Outcome")
	}
}

func testClassifyConnectionRefused(t *testing.T, c classifyCase) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	b, err := c.open(testContext(t), impl.ConnConfig{URL: "redis://" + addr})
	if err == nil {
		_ = b.Close()
		t.Fatalf("open redis://%s: no error", addr)
	}
	wantClass(t, c.backend, err, impl.ClassRefused, "")
}

func testClassifyConnectionKilled(t *testing.T, c classifyCase) {
	if c.env.Kind != redisenv.KindSpawn {
		t.Skipf("kills a client connection: only on a redis-server the test binary spawned, not on %s", c.env.Kind)
	}
	ks := c.env.Keyspace(t)
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() { done <- c.do(ctx, c.backend, "BLPOP", ks.Key("empty"), "20") }()
	id, err := waitForClient(ctx, c.env.Admin, "blpop")
	if err != nil {
		t.Fatalf("find the blocked client: %v", err)
	}
	if err := c.env.Admin.ClientKillByFilter(ctx, "ID", id).Err(); err != nil {
		t.Fatalf("CLIENT KILL ID %s: %v", id, err)
	}
	select {
	case err := <-done:
		wantClass(t, c.backend, err, impl.ClassConnection, "")
	case <-ctx.Done():
		t.Fatalf("BLPOP did not return after its connection was killed")
	}
	if !impl.MayHaveApplied(impl.ClassConnection) {
		t.Errorf("a command whose connection was lost surely did not apply, says Outcome")
	}
}

// waitForClient polls CLIENT LIST until a client runs cmd and returns its
// id.
func waitForClient(ctx context.Context, admin redis.UniversalClient, cmd string) (string, error) {
	for {
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(list, "\n") {
			var id string
			found := false
			for _, f := range strings.Fields(line) {
				k, v, _ := strings.Cut(f, "=")
				switch {
				case k == "id":
					id = v
				case k == "cmd" && v == cmd:
					found = true
				}
			}
			if found && id != "" {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no client runs %s: %w", cmd, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
