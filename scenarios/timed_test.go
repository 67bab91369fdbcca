package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/bench"
	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
)

// timedCellTimeout bounds one cell of the timed-section tests.
const timedCellTimeout = time.Minute

// timedCommands is a go-redis hook that records every command sent under a
// context inside a timed operation (bench.InTimedOp).
type timedCommands struct {
	mu   sync.Mutex
	cmds []string
}

func (r *timedCommands) record(ctx context.Context, cmds ...redis.Cmder) {
	if !bench.InTimedOp(ctx) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cmds {
		r.cmds = append(r.cmds, strings.ToUpper(c.Name()))
	}
}

// DialHook implements redis.Hook.
func (r *timedCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (r *timedCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.record(ctx, cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (r *timedCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.record(ctx, cmds...)
		return next(ctx, cmds)
	}
}

// recorded returns the commands recorded so far.
func (r *timedCommands) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cmds...)
}

// hookedEnv is testEnvC whose admin client is a client of its own, named
// as every admin client is, that records the commands a timed operation
// sends it.
func hookedEnv(t *testing.T, backend string, concurrency int) (*Env, *timedCommands) {
	t.Helper()
	env := testEnvC(t, backend, concurrency)
	opt := *env.Admin.(*redis.Client).Options()
	admin := redis.NewClient(&opt)
	t.Cleanup(func() { _ = admin.Close() })
	rec := &timedCommands{}
	admin.AddHook(rec)
	env.Admin = admin
	return env, rec
}

// smallScenario shrinks a scenario's defaults (and the cell's duration)
// to a cell of a second or less that still does every step.
func smallScenario(t *testing.T, s Scenario, env *Env) {
	t.Helper()
	switch s := s.(type) {
	case *Oversell:
		s.Stock, s.Buyers = 20, 100
	case *LostReply:
		s.Purchases = 200
	case *DuplicateOrder:
		s.Orders, s.Stock = 30, 100
	case *PayCancel:
		s.Orders, s.Stock = 30, 100
	case *Checkout:
		s.Stock, s.Buyers, s.ReservationTTL = 10, 40, 100*time.Millisecond
	case *DupSubmit:
		s.Requests, s.Copies = 40, 3
	case *RateLimit:
		s.Users, s.Periods, s.Period = 2, 2, 100*time.Millisecond
	case *LockRace:
		env.Common.Duration = 400 * time.Millisecond
	case *LockExpiry:
		env.Common.Duration = 400 * time.Millisecond
	case *CacheStampede:
		s.Instances, s.TTL, s.LoadLatency = 2, 200*time.Millisecond, 10*time.Millisecond
		env.Common.Duration = 600 * time.Millisecond
	case *CacheStaleness:
		s.TTL = 300 * time.Millisecond
		env.Common.Duration = 500 * time.Millisecond
	default:
		t.Fatalf("no small size for scenario %s (%T): add it to smallScenario", s.Name(), s)
	}
}

// TestTimedOperationsCallOnlyTheBackend runs every scenario on both
// backends with every strategy, small, and asserts that no timed operation
// sent a command to the admin client: one measured operation calls the
// backend under test and nothing else. It also checks that the backend's
// connections carry the backend's name and the admin's its own, so that
// CLIENT LIST tells them apart.
func TestTimedOperationsCallOnlyTheBackend(t *testing.T) {
	for _, name := range Names() {
		proto, err := New(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, backend := range impl.Backends() {
			for _, strategy := range StrategyNames(proto) {
				t.Run(name+"/"+backend+"/"+strategy, func(t *testing.T) {
					s, err := New(name)
					if err != nil {
						t.Fatal(err)
					}
					env, rec := hookedEnv(t, backend, 8)
					smallScenario(t, s, env)
					if err := s.Validate(); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), timedCellTimeout)
					defer cancel()
					cell, err := s.Run(ctx, env, strategy)
					if errors.Is(err, impl.ErrNotSupported) {
						t.Skipf("%s/%s: %v", backend, strategy, err)
					}
					if err != nil {
						t.Fatal(err)
					}
					if cell.Ops == 0 {
						t.Fatalf("no operation ran: %s", cell.Summary)
					}
					if got := rec.recorded(); len(got) != 0 {
						t.Errorf("%d admin commands inside timed operations of %d: %s", len(got), cell.Ops, summarizeCommands(got))
					}
					checkConnectionNames(ctx, t, env)
				})
			}
		}
	}
}

// TestTimedLoadOperationsCallOnlyTheBackend is the same for every load
// operation, unbatched and, where the operation can, batched.
func TestTimedLoadOperationsCallOnlyTheBackend(t *testing.T) {
	for _, name := range OperationNames() {
		op, err := LookupOperation(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, backend := range impl.Backends() {
			for _, strategy := range op.Strategies {
				t.Run(name+"/"+backend+"/"+strategy, func(t *testing.T) {
					env, rec := hookedEnv(t, backend, 4)
					const keys, workers = 4, 4
					lenv := &LoadEnv{
						Backend: env.Backend, Admin: env.Admin, Open: env.Open, Keys: env.Keys,
						KeyCount: keys, Workers: workers,
						Pick: func(w *bench.Worker) int { return w.Rand.IntN(keys) },
					}
					ctx, cancel := context.WithTimeout(context.Background(), timedCellTimeout)
					defer cancel()
					load, err := op.Setup(ctx, lenv, strategy)
					if errors.Is(err, impl.ErrNotSupported) {
						t.Skipf("%s/%s: %v", backend, strategy, err)
					}
					if err != nil {
						t.Fatal(err)
					}
					if load.Close != nil {
						defer func() {
							if err := load.Close(); err != nil {
								t.Errorf("close: %v", err)
							}
						}()
					}
					cfg := bench.Config{Concurrency: workers, Requests: 40, Seed: 1}
					runs := []struct {
						batch int
						op    bench.Op
					}{{1, load.Op}}
					if load.Batch != nil {
						runs = append(runs, struct {
							batch int
							op    bench.Op
						}{5, func(ctx context.Context, w *bench.Worker) error { return load.Batch(ctx, w, w.N) }})
					}
					for _, r := range runs {
						cfg.Batch = r.batch
						stats, err := bench.Run(ctx, cfg, r.op)
						if err != nil {
							t.Fatal(err)
						}
						if stats.Ops != cfg.Requests {
							t.Fatalf("batch %d: %d operations, want %d", r.batch, stats.Ops, cfg.Requests)
						}
					}
					if load.Figures != nil {
						if _, err := load.Figures(ctx); err != nil {
							t.Fatalf("figures: %v", err)
						}
					}
					if got := rec.recorded(); len(got) != 0 {
						t.Errorf("%d admin commands inside timed operations: %s", len(got), summarizeCommands(got))
					}
				})
			}
		}
	}
}

// summarizeCommands counts commands by name: "HSET×12 EVALSHA×3".
func summarizeCommands(cmds []string) string {
	n := map[string]int{}
	var order []string
	for _, c := range cmds {
		if n[c] == 0 {
			order = append(order, c)
		}
		n[c]++
	}
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%s×%d", c, n[c])
	}
	return strings.Join(parts, " ")
}

// clientEntry is one line of CLIENT LIST: the connection's id and name.
type clientEntry struct {
	id   int64
	name string
}

// clientList reads CLIENT LIST through admin (outside any timed
// operation) and returns the connections by id.
func clientList(ctx context.Context, t *testing.T, admin redis.UniversalClient) map[int64]clientEntry {
	t.Helper()
	raw, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	out := map[int64]clientEntry{}
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		var e clientEntry
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "id":
				e.id, err = strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("CLIENT LIST line %q: id: %v", line, err)
				}
			case "name":
				e.name = v
			}
		}
		out[e.id] = e
	}
	return out
}

// backendClientID returns the id of one of the backend's own connections
// (CLIENT ID sent through the backend's library).
func backendClientID(ctx context.Context, t *testing.T, b impl.Backend) int64 {
	t.Helper()
	switch c := b.(type) {
	case interface{ Rueidis() rd.Client }:
		rc := c.Rueidis()
		id, err := rc.Do(ctx, rc.B().ClientId().Build()).AsInt64()
		if err != nil {
			t.Fatalf("CLIENT ID through rueidis: %v", err)
		}
		return id
	case interface{ Redis() redis.UniversalClient }:
		id, err := c.Redis().ClientID(ctx).Result()
		if err != nil {
			t.Fatalf("CLIENT ID through go-redis: %v", err)
		}
		return id
	}
	t.Fatalf("backend %T exposes no client", b)
	return 0
}

// checkConnectionNames asserts that the backend under test's connections
// are named impl.DefaultClientName(backend), that the admin's are named
// redisenv.AdminClientName, and that the two are different connections.
func checkConnectionNames(ctx context.Context, t *testing.T, env *Env) {
	t.Helper()
	want := impl.DefaultClientName(env.Backend.Name())
	backendID := backendClientID(ctx, t, env.Backend)
	adminID, err := env.Admin.ClientID(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT ID through the admin client: %v", err)
	}
	conns := clientList(ctx, t, env.Admin)
	named := 0
	for _, c := range conns {
		if c.name == want {
			named++
		}
	}
	switch {
	case named == 0:
		t.Errorf("no connection named %s in CLIENT LIST", want)
	case conns[backendID].name != want:
		t.Errorf("the backend's connection %d is named %q, want %q", backendID, conns[backendID].name, want)
	case conns[adminID].name != redisenv.AdminClientName:
		t.Errorf("the admin's connection %d is named %q, want %q", adminID, conns[adminID].name, redisenv.AdminClientName)
	case backendID == adminID:
		t.Errorf("the backend and the admin share connection %d", backendID)
	}
}
