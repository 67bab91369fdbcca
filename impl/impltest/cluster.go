package impltest

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/wiretap"
)

// RunClusterRedirects checks, on a Redis Cluster (env from Cluster), that
// a backend in cluster mode with paybench's default retry setting follows
// the redirections of a slot migration and never re-sends a write whose
// reply was lost:
//
//   - a deduction whose key was migrated while the slot is MIGRATING (ASK)
//     and after the slot moved (MOVED) succeeds, each applied once, and
//     the backend's wire counter (impl.ConnConfig.Redirects) saw the ASK
//     and the MOVED;
//   - a deduction whose reply does not come in time (its master is kept
//     busy by a script, the backend's read time-out is short) applies at
//     most once: the library does not send it again.
//
// The migrated slot stays on its new master.
func RunClusterRedirects(t *testing.T, env Env, open impl.Opener) {
	t.Run("follows ASK and MOVED", func(t *testing.T) { clusterFollows(t, env, open) })
	t.Run("no re-send after a lost reply", func(t *testing.T) { clusterNoResend(t, env, open) })
}

// clusterStock opens a backend with cfg and returns its strategy.
func clusterStock(t *testing.T, cfg impl.ConnConfig, open impl.Opener, ks impl.Keyspace, strategy string) impl.Stock {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	be, err := open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	sb, ok := be.(impl.StockBackend)
	if !ok {
		t.Fatalf("%s offers no stock family", be.Name())
	}
	st, err := sb.Stock(strategy, impl.StockOptions{Keys: ks})
	if err != nil {
		t.Fatalf("stock %s: %v", strategy, err)
	}
	return st
}

// slotOwners returns the id and address of the master serving slot and of
// another master.
func slotOwners(ctx context.Context, t *testing.T, admin redis.UniversalClient, slot int) (ownerID, ownerAddr, otherID, otherAddr string) {
	t.Helper()
	slots, err := admin.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		if slot >= s.Start && slot <= s.End {
			ownerID, ownerAddr = s.Nodes[0].ID, s.Nodes[0].Addr
		}
	}
	for _, s := range slots {
		if len(s.Nodes) > 0 && s.Nodes[0].ID != ownerID {
			otherID, otherAddr = s.Nodes[0].ID, s.Nodes[0].Addr
			break
		}
	}
	if ownerID == "" || otherID == "" {
		t.Fatalf("CLUSTER SLOTS: no owner of slot %d, or no other master: %+v", slot, slots)
	}
	return ownerID, ownerAddr, otherID, otherAddr
}

// nodeClient is a client of one node, with the admin's password; closed
// when the test ends.
func nodeClient(t *testing.T, env Env, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: env.Conn.Password, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func clusterFollows(t *testing.T, env Env, open impl.Opener) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	ks := env.Keyspace(t)
	var ctr wiretap.Counter
	cfg := env.Conn
	cfg.Redirects = &ctr
	st := clusterStock(t, cfg, open, ks, impl.StockLua)
	const item = "migrating"
	key := impl.StockKey(ks, item)
	if err := st.Set(ctx, item, 10); err != nil {
		t.Fatalf("set: %v", err)
	}
	// A first deduction, so that the backend knows the slot's owner.
	if d, err := st.Deduct(ctx, item, 1); err != nil || !d.OK {
		t.Fatalf("deduct before the migration: %+v, %v", d, err)
	}
	slot64, err := env.Admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	slot := int(slot64)
	srcID, srcAddr, dstID, dstAddr := slotOwners(ctx, t, env.Admin, slot)
	src, dst := nodeClient(t, env, srcAddr), nodeClient(t, env, dstAddr)
	host, port, err := net.SplitHostPort(dstAddr)
	if err != nil {
		t.Fatal(err)
	}
	// The slot is migrating and the key already moved: the source
	// answers ASK.
	if err := dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatalf("SETSLOT IMPORTING: %v", err)
	}
	if err := src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatalf("SETSLOT MIGRATING: %v", err)
	}
	migrate := []any{"MIGRATE", host, port, "", 0, 5000}
	if env.Conn.Password != "" {
		migrate = append(migrate, "AUTH", env.Conn.Password)
	}
	if err := src.Do(ctx, append(migrate, "KEYS", key)...).Err(); err != nil {
		t.Fatalf("MIGRATE: %v", err)
	}
	before := ctr.Read()
	if d, err := st.Deduct(ctx, item, 1); err != nil || !d.OK || d.Remaining != 8 {
		t.Fatalf("deduct while the slot migrates: %+v, %v; want 1 unit taken, 8 left", d, err)
	}
	if got := ctr.Read().Sub(before); got.Ask < 1 {
		t.Errorf("redirections counted while migrating: %+v, want an ASK", got)
	}
	// The slot moves: every master learns its new owner, the source
	// answers MOVED.
	masters := []*redis.Client{dst, src}
	slots, err := env.Admin.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{srcAddr: true, dstAddr: true}
	for _, s := range slots {
		if len(s.Nodes) > 0 && !seen[s.Nodes[0].Addr] {
			seen[s.Nodes[0].Addr] = true
			masters = append(masters, nodeClient(t, env, s.Nodes[0].Addr))
		}
	}
	for _, m := range masters {
		if err := m.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
			t.Fatalf("SETSLOT NODE on %s: %v", m.Options().Addr, err)
		}
	}
	before = ctr.Read()
	if d, err := st.Deduct(ctx, item, 1); err != nil || !d.OK || d.Remaining != 7 {
		t.Fatalf("deduct after the slot moved: %+v, %v; want 1 unit taken, 7 left", d, err)
	}
	if got := ctr.Read().Sub(before); got.Moved < 1 {
		t.Errorf("redirections counted after the move: %+v, want a MOVED", got)
	}
	if v, err := dst.Get(ctx, key).Result(); err != nil || v != "7" {
		t.Errorf("stock on the new master: %q, %v; want 7 (each deduction applied once)", v, err)
	}
}

// busyScript keeps the server busy for ARGV[1] microseconds.
const busyScript = `local t0 = redis.call('TIME')
local us = tonumber(ARGV[1])
repeat
  local t = redis.call('TIME')
until (tonumber(t[1]) - tonumber(t0[1])) * 1000000 + (tonumber(t[2]) - tonumber(t0[2])) >= us
return 1`

func clusterNoResend(t *testing.T, env Env, open impl.Opener) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	ks := env.Keyspace(t)
	cfg := env.Conn
	cfg.ReadTimeout = 200 * time.Millisecond
	st := clusterStock(t, cfg, open, ks, impl.StockDecr)
	const item = "lost-reply"
	key := impl.StockKey(ks, item)
	if err := st.Set(ctx, item, 10); err != nil {
		t.Fatalf("set: %v", err)
	}
	const busy = 900 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		// The script runs on the key's master (same slot).
		done <- env.Admin.Eval(ctx, busyScript, []string{key}, strconv.FormatInt(busy.Microseconds(), 10)).Err()
	}()
	time.Sleep(100 * time.Millisecond)
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	d, err := st.Deduct(dctx, item, 1)
	dcancel()
	if serr := <-done; serr != nil {
		t.Fatalf("busy script: %v", serr)
	}
	// Whatever the backend sent is processed once the script ends.
	time.Sleep(300 * time.Millisecond)
	v, gerr := env.Admin.Get(ctx, key).Result()
	if gerr != nil {
		t.Fatalf("read back: %v", gerr)
	}
	n, _ := strconv.Atoi(v)
	switch {
	case err == nil && (!d.OK || n != 9):
		t.Errorf("deduct answered %+v, stock %d; want 1 unit taken, 9 left", d, n)
	case err != nil && n < 9:
		t.Errorf("deduct failed (%v, class %s) and the stock is %d: the write was sent again", err, impl.Classify(err), n)
	case err != nil && !impl.MayHaveApplied(impl.Classify(err)):
		t.Errorf("a reply lost to a time-out was classed %s (%v), which says it surely did not apply", impl.Classify(err), err)
	}
	t.Logf("deduct during a busy master: err=%v, stock %d", err, n)
}
