package runner

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/bench/redisenv/redistest"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
	"github.com/paybench/paybench/scenarios"
)

// asUser connects to srv as an ACL user.
func asUser(t *testing.T, srv *redisenv.Server, user, pass string) *redisenv.Server {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	us, err := redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindURL, URL: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { us.Close() })
	return us
}

// scenario returns a named scenario with its flags set.
func scenario(t *testing.T, name string, args ...string) scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.New(name)
	if err != nil {
		t.Fatal(err)
	}
	return withFlags(t, sc, args...)
}

// TestServersThatRefuseWorkNeverPass runs cells on the servers users meet
// every day — a user without scripting rights, a server where EVALSHA is
// renamed away, a full server — and checks that no cell PASSes, that each
// is INCONCLUSIVE, and that the reason names the cause in the server's
// words.
func TestServersThatRefuseWorkNeverPass(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serverArgs []string
		acl        string // an ACL SETUSER rule list for user "u", when set
		sc         func(t *testing.T) scenarios.Scenario
		strategies []string
		backends   []string
		want       []string // in the reason
		full       bool     // maxmemory just above the memory used at the start
	}{
		{
			name: "user without scripting", acl: "on >pw ~pb:* +@all -@scripting",
			sc:         func(t *testing.T) scenarios.Scenario { return scenario(t, "oversell", "--buyers", "200") },
			strategies: []string{impl.StockLua, impl.StockSharded}, backends: impl.Backends(),
			want: []string{"noperm", "NOPERM"},
		},
		{
			name: "EVALSHA renamed away", serverArgs: []string{"--rename-command", "EVALSHA", ""},
			sc:         func(t *testing.T) scenarios.Scenario { return scenario(t, "oversell", "--buyers", "200") },
			strategies: []string{impl.StockLua}, backends: impl.Backends(),
			want: []string{"unknown"},
		},
		{
			name: "full server", serverArgs: []string{"--maxmemory-policy", "noeviction"}, full: true,
			sc:         func(t *testing.T) scenarios.Scenario { return scenario(t, "duplicate-order") },
			strategies: []string{"safe"}, backends: []string{impl.GoRedis},
			want: []string{"oom", "OOM"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Spawn(t, tc.serverArgs...)
			ctx := context.Background()
			if tc.acl != "" {
				if err := srv.Admin().Do(ctx, append([]any{"ACL", "SETUSER", "u"}, toAny(strings.Fields(tc.acl))...)...).Err(); err != nil {
					t.Fatal(err)
				}
				srv = asUser(t, srv, "u", "pw")
			}
			if tc.full {
				info, err := srv.Admin().Info(ctx, "memory").Result()
				if err != nil {
					t.Fatal(err)
				}
				var mem int64
				for _, line := range strings.Split(info, "\n") {
					if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
						mem, err = strconv.ParseInt(v, 10, 64)
						if err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := srv.Admin().ConfigSet(ctx, "maxmemory", strconv.FormatInt(mem+600<<10, 10)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			p := &Plan{
				Kind: "run", Server: srv, Backends: tc.backends,
				Settings:  Settings{Concurrency: 8, Seed: 1},
				Keys:      impl.MustKeyspace("pb:faulty:"),
				Scenarios: []ScenarioCells{{Scenario: tc.sc(t), Strategies: tc.strategies}},
			}
			doc, err := runPlan(t, p)
			if doc == nil {
				t.Fatalf("no document: %v", err)
			}
			if len(doc.Cells) != len(tc.backends)*len(tc.strategies) {
				t.Fatalf("%d cells", len(doc.Cells))
			}
			for _, c := range doc.Cells {
				if c.Verdict == result.Pass || c.Verdict == result.Fail {
					t.Errorf("%s: %s over failed work (%s)", c.Key(), c.Verdict, c.Summary)
				}
				text := c.Reason + " " + c.Error
				for _, w := range tc.want {
					if !strings.Contains(text, w) {
						t.Errorf("%s %s: %q does not name %q", c.Key(), c.Verdict, text, w)
					}
				}
			}
			if VerdictError(doc) == nil {
				t.Error("a run over failed work exits 0")
			}
		})
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestARestartDuringACellIsNeverAFail restarts the server (without
// persistence: the cell's data is lost) in the middle of a cell: the cell
// is INCONCLUSIVE and says the server restarted, never a FAIL of the
// strategy nor a PASS.
func TestARestartDuringACellIsNeverAFail(t *testing.T) {
	srv := redistest.Spawn(t)
	for _, strategy := range []string{impl.StockLua, impl.StockWatch} {
		t.Run(strategy, func(t *testing.T) {
			p := &Plan{
				Kind: "run", Server: srv, Backends: []string{impl.GoRedis},
				Settings:  Settings{Concurrency: 8, Seed: 1},
				Keys:      impl.MustKeyspace("pb:restart-" + strategy + ":"),
				Scenarios: []ScenarioCells{{Scenario: scenario(t, "oversell", "--stock", "1000000", "--buyers", "40000"), Strategies: []string{strategy}}},
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			restarted := make(chan error, 1)
			p.OnEvent = func(e Event) {
				if e.Type != CellStarted {
					return
				}
				time.AfterFunc(300*time.Millisecond, func() { restarted <- srv.Restart(ctx) })
			}
			doc, err := Run(ctx, p)
			if rerr := <-restarted; rerr != nil {
				t.Fatal(rerr)
			}
			if doc == nil {
				t.Fatalf("no document: %v", err)
			}
			c := doc.Cells[0]
			if c.Verdict != result.Inconclusive || !strings.Contains(c.Reason, "restarted") {
				t.Fatalf("%s: %s (%s%s)", c.Key(), c.Verdict, c.Reason, c.Error)
			}
		})
	}
}
