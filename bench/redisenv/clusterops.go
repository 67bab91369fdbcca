package redisenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Bounds of a slot migration.
const (
	// migrateBatch is how many keys one MIGRATE moves.
	migrateBatch = 100
	// migrateTimeout is MIGRATE's own time-out, in milliseconds.
	migrateTimeout = 5000
)

// SlotMove is what MoveSlots did.
type SlotMove struct {
	// From and To are the masters' addresses.
	From, To string
	// Slots are the slots moved, ascending.
	Slots []int
	// Keys counts the keys MIGRATE moved.
	Keys int
}

// String describes the move for a fault log: "2 slots (5798, 12001)
// 127.0.0.1:7000 → 127.0.0.1:7001, 3 keys".
func (m SlotMove) String() string {
	if len(m.Slots) == 0 {
		return "no slot moved"
	}
	slots := ""
	for i, s := range m.Slots {
		if i == 5 {
			slots += ", …"
			break
		}
		if i > 0 {
			slots += ", "
		}
		slots += strconv.Itoa(s)
	}
	noun := "slots"
	if len(m.Slots) == 1 {
		noun = "slot"
	}
	return fmt.Sprintf("%d %s (%s) %s → %s, %d keys", len(m.Slots), noun, slots, m.From, m.To, m.Keys)
}

// MoveSlots reshards a Redis Cluster under its clients' feet: it finds the
// keys matching the first of patterns that matches any (SCAN on every
// master; say the hot keys first, then a catch-all), picks the master
// that holds most of them, and moves every slot of its that holds one of
// them to the next master (by address), the way redis-cli --cluster
// reshard does, slot by slot: CLUSTER SETSLOT IMPORTING on the target,
// MIGRATING on the source, MIGRATE of the slot's keys in batches (clients
// meet ASK meanwhile), then SETSLOT NODE on the target, the source and
// every other master (clients meet MOVED from then on). The slots stay
// on their new master.
//
// A move that fails half-way leaves its slot MIGRATING/IMPORTING; the
// error says which slot. It refuses a server that is not a cluster, and
// a cluster where no pattern matches a key or that has one master.
func (s *Server) MoveSlots(ctx context.Context, patterns ...string) (SlotMove, error) {
	var mv SlotMove
	h, err := s.hotMaster(ctx, patterns)
	defer h.close()
	if err != nil {
		return mv, fmt.Errorf("move slots: %w", err)
	}
	masters, src, slots, clients := h.masters, h.src, h.slots, h.clients
	if len(masters) < 2 {
		return mv, fmt.Errorf("move slots: %d master(s) serve slots; a reshard needs two", len(masters))
	}
	dst := (src + 1) % len(masters)
	from, to := masters[src], masters[dst]
	mv.From, mv.To = from.Addr, to.Addr
	for sl := range slots[src] {
		mv.Slots = append(mv.Slots, sl)
	}
	sort.Ints(mv.Slots)
	host, port, err := net.SplitHostPort(to.Addr)
	if err != nil {
		return mv, fmt.Errorf("move slots: target address %q: %w", to.Addr, err)
	}
	for _, sl := range mv.Slots {
		n, err := s.moveSlot(ctx, clients, masters, src, dst, sl, host, port)
		mv.Keys += n
		if err != nil {
			return mv, fmt.Errorf("move slot %d %s → %s: %w", sl, from.Addr, to.Addr, err)
		}
	}
	return mv, nil
}

// hot is the master that holds most of some keys.
type hot struct {
	// masters are the cluster's masters that serve slots, by address.
	masters []Node
	// src indexes the master holding most keys.
	src int
	// slots counts the keys per slot, per master.
	slots []map[int]int
	// clients are the admin's clients of every node, by address.
	clients map[string]*redis.Client
	// own are the clients of clients that hotMaster made.
	own []*redis.Client
}

// close closes the clients hotMaster made.
func (h hot) close() {
	for _, c := range h.own {
		_ = c.Close()
	}
}

// directClient returns a new client of one node with the admin client's
// settings and credentials; the caller closes it.
func (s *Server) directClient(addr string) *redis.Client {
	o := &redis.Options{Addr: addr}
	if co, _, err := parseClusterURL(s.URL, ""); err == nil {
		o.Username, o.Password, o.TLSConfig = co.Username, co.Password, co.TLSConfig
	}
	return redis.NewClient(adminOptions(o, DefaultDialTimeout))
}

// hotMaster finds the master holding most keys matching the first of
// patterns that matches any (SCAN on every master).
func (s *Server) hotMaster(ctx context.Context, patterns []string) (hot, error) {
	h := hot{src: -1}
	if !s.Cluster {
		return h, errors.New("not a Redis Cluster")
	}
	topo, err := s.Topology(ctx)
	if err != nil {
		return h, err
	}
	for _, n := range topo {
		if n.Role == "master" && !n.Failed && len(n.Slots) > 0 {
			h.masters = append(h.masters, n)
		}
	}
	if h.clients, err = s.nodeClients(ctx); err != nil {
		return h, err
	}
	// The cluster client knows its masters only (no ReadOnly): a client
	// of paybench's own for each other node, closed by hot.close.
	for _, n := range topo {
		if h.clients[n.Addr] == nil {
			c := s.directClient(n.Addr)
			h.clients[n.Addr] = c
			h.own = append(h.own, c)
		}
	}
	for _, m := range h.masters {
		if h.clients[m.Addr] == nil {
			return h, fmt.Errorf("no client for master %s", m.Addr)
		}
	}
	for _, pattern := range patterns {
		if h.slots, err = slotsPerMaster(ctx, h.clients, h.masters, pattern); err != nil {
			return h, err
		}
		most := 0
		for i := range h.masters {
			if n := keyCount(h.slots[i]); n > most {
				h.src, most = i, n
			}
		}
		if h.src >= 0 {
			return h, nil
		}
	}
	return h, fmt.Errorf("no key matches %q on any master", patterns)
}

// moveSlot moves one slot from masters[src] to masters[dst] and returns
// how many keys it migrated.
func (s *Server) moveSlot(ctx context.Context, clients map[string]*redis.Client, masters []Node, src, dst, slot int, host, port string) (int, error) {
	from, to := clients[masters[src].Addr], clients[masters[dst].Addr]
	if err := to.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", masters[src].ID).Err(); err != nil {
		return 0, fmt.Errorf("SETSLOT IMPORTING on the target: %w", err)
	}
	if err := from.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", masters[dst].ID).Err(); err != nil {
		return 0, fmt.Errorf("SETSLOT MIGRATING on the source: %w", err)
	}
	moved := 0
	for {
		keys, err := from.ClusterGetKeysInSlot(ctx, slot, migrateBatch).Result()
		if err != nil {
			return moved, fmt.Errorf("CLUSTER GETKEYSINSLOT: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, migrateTimeout}
		if s.Password != "" {
			if user := s.username(); user != "" {
				args = append(args, "AUTH2", user, s.Password)
			} else {
				args = append(args, "AUTH", s.Password)
			}
		}
		args = append(args, "KEYS")
		for _, k := range keys {
			args = append(args, k)
		}
		if err := from.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			// The reply never echoes the command, so no password leaks.
			return moved, fmt.Errorf("MIGRATE %d keys: %w", len(keys), err)
		}
		moved += len(keys)
	}
	// The target first, then the source, then the others, as Redis's
	// documentation of CLUSTER SETSLOT asks.
	order := []int{dst, src}
	for i := range masters {
		if i != src && i != dst {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if err := clients[masters[i].Addr].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", masters[dst].ID).Err(); err != nil {
			return moved, fmt.Errorf("SETSLOT NODE on %s: %w", masters[i].Addr, err)
		}
	}
	return moved, nil
}

// slotsPerMaster counts the keys matching pattern per slot, on each
// master (concurrently).
func slotsPerMaster(ctx context.Context, clients map[string]*redis.Client, masters []Node, pattern string) ([]map[int]int, error) {
	slots := make([]map[int]int, len(masters))
	errs := make([]error, len(masters))
	var wg sync.WaitGroup
	for i, m := range masters {
		wg.Go(func() { slots[i], errs[i] = keySlots(ctx, clients[m.Addr], pattern) })
	}
	wg.Wait()
	return slots, errors.Join(errs...)
}

// keyCount adds up a slot → keys map.
func keyCount(m map[int]int) int {
	n := 0
	for _, k := range m {
		n += k
	}
	return n
}

// keySlots counts the keys matching pattern on one node per slot (SCAN,
// and each key's slot computed here: impl.KeySlot, which agrees with
// CLUSTER KEYSLOT).
func keySlots(ctx context.Context, node *redis.Client, pattern string) (map[int]int, error) {
	out := map[int]int{}
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, pattern, deleteBatch).Result()
		if err != nil {
			return nil, fmt.Errorf("SCAN %s: %w", node.Options().Addr, err)
		}
		for _, k := range keys {
			out[impl.KeySlot(k)]++
		}
		if next == 0 {
			return out, nil
		}
		cursor = next
	}
}

// nodeClients returns the admin cluster client's own client of each
// node, masters and replicas, by address, after reloading its view of the
// cluster.
func (s *Server) nodeClients(ctx context.Context) (map[string]*redis.Client, error) {
	cc, ok := s.admin.(*redis.ClusterClient)
	if !ok {
		return nil, fmt.Errorf("the admin client is a %T, not a cluster client", s.admin)
	}
	cc.ReloadState(ctx)
	var mu sync.Mutex
	out := map[string]*redis.Client{}
	err := cc.ForEachShard(ctx, func(_ context.Context, node *redis.Client) error {
		mu.Lock()
		out[node.Options().Addr] = node
		mu.Unlock()
		return nil
	})
	return out, err
}

// username returns the user name of the server's URL ("" for none).
func (s *Server) username() string {
	co, _, err := parseClusterURL(s.URL, "")
	if err != nil {
		return ""
	}
	return co.Username
}
