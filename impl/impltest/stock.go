package impltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
)

// testTimeout bounds every Redis call a stock test makes.
const testTimeout = 30 * time.Second

// Workload sizes of the concurrent tests: workers × deductions each.
const (
	workers      = 8
	perWorker    = 25
	shortfall    = 13 // the concurrent test's stock is workers*perWorker - shortfall
	testShards   = 8
	testRetries  = 10_000 // the watch strategy must not give up in the exact tests
	multiUnits   = 100
	multiQty     = 3
	multiWorkers = 4
)

// safeStrategies never oversell under concurrency.
var safeStrategies = []string{impl.StockDecr, impl.StockWatch, impl.StockLua, impl.StockIdempotent, impl.StockSharded, impl.StockShardedSlots}

// atomicStrategies never refuse while the stock covers the quantity (decr
// may refuse a buyer while another's compensation is in flight).
// sharded-slots' walk refuses only once every shard was found short with
// nothing held by another walk, so it belongs here too.
var atomicStrategies = []string{impl.StockWatch, impl.StockLua, impl.StockIdempotent, impl.StockSharded, impl.StockShardedSlots}

// scriptStrategies run server-side scripts, which must survive a flushed
// script cache.
var scriptStrategies = []string{impl.StockLua, impl.StockIdempotent, impl.StockSharded, impl.StockShardedSlots}

// resendingStrategies are not idempotent on a purchase's id: the same
// purchase sent twice deducts twice.
var resendingStrategies = []string{impl.StockNaive, impl.StockDecr, impl.StockLua}

// oddItems are item ids that a careless key schema would break on.
var oddItems = []string{"", "{", "}", "a{b}c", "a:b", "%", "%25", " ", "日本", "\x00\n", strings.Repeat("x", 300)}

// stockCase is what each stock test receives.
type stockCase struct {
	env      Env
	open     impl.Opener
	backend  impl.Backend
	strategy string
}

// stock returns a fresh keyspace and the case's strategy on it, with the
// suite's default options changed by opt.
func (c stockCase) stock(t *testing.T, opt func(*impl.StockOptions)) (impl.Stock, impl.Keyspace) {
	t.Helper()
	ks := c.env.Keyspace(t)
	o := impl.StockOptions{Keys: ks, MaxRetries: testRetries, Shards: testShards}
	if opt != nil {
		opt(&o)
	}
	s, err := c.backend.(impl.StockBackend).Stock(c.strategy, o)
	if err != nil {
		t.Fatalf("Stock(%q): %v", c.strategy, err)
	}
	if c.strategy == impl.StockShardedSlots {
		walkers.Store(s, true)
	}
	return s, ks
}

// walkers holds the sharded-slots strategies the tests opened: their
// Deduction.Remaining counts the shards a deduction visited only, so a
// success's Remaining is at most the stock left (a refusal visited every
// shard: exact).
var walkers sync.Map

// sameDeduction compares a deduction with the one wanted: exactly, or
// for a sharded-slots success with a Remaining between 0 and the one
// wanted.
func sameDeduction(s impl.Stock, got, want impl.Deduction) bool {
	if _, ok := walkers.Load(s); ok && got.OK && want.OK && got.Remaining >= 0 && got.Remaining <= want.Remaining {
		got.Remaining = want.Remaining
	}
	return got == want
}

// stockTest is one conformance test; only lists the strategies it applies
// to (nil: all).
type stockTest struct {
	name string
	only []string
	run  func(t *testing.T, c stockCase)
}

// RunStock runs the stock conformance suite: for every strategy of
// impl.StockStrategies, every test that applies to it, against env, with a
// backend that open connects (one per strategy, closed at the end).
func RunStock(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	t.Logf("stock conformance on %s", env.Name)
	t.Run("Strategies", func(t *testing.T) { testStockStrategies(t, env, open) })
	for _, strategy := range impl.StockStrategies() {
		t.Run(strategy, func(t *testing.T) {
			b := openBackend(t, env, open)
			c := stockCase{env: env, open: open, backend: b, strategy: strategy}
			for _, tt := range stockTests {
				if tt.only != nil && !slices.Contains(tt.only, strategy) {
					continue
				}
				t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
			}
		})
	}
}

// RunBackend checks what every backend offers whatever the family: its
// name, its settings, Close.
func RunBackend(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	ctx := testContext(t)
	b, err := open(ctx, env.Conn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if !slices.Contains(impl.Backends(), b.Name()) {
		t.Errorf("Name() = %q, want one of %v", b.Name(), impl.Backends())
	}
	if len(b.Settings()) == 0 {
		t.Errorf("Settings() is empty")
	}
	for k, v := range b.Settings() {
		if k == "" || v == "" {
			t.Errorf("Settings() has an empty name or value: %q=%q", k, v)
		}
	}
	if _, ok := b.(impl.StockBackend); !ok {
		t.Errorf("%T does not implement impl.StockBackend", b)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Every connection carries the backend's name, so that CLIENT LIST
	// tells it from the admin client: the default, or the one asked for.
	for _, name := range []string{"", "pb-conformance-" + randomHex(4)} {
		cfg := env.Conn
		cfg.ClientName = name
		b, err := open(ctx, cfg)
		if err != nil {
			t.Fatalf("open with client name %q: %v", name, err)
		}
		want := name
		if want == "" {
			want = impl.DefaultClientName(b.Name())
		}
		if got := b.Settings()["client_name"]; got != want {
			t.Errorf("Settings()[client_name] = %q, want %q", got, want)
		}
		// A cluster client may open its node connections after open
		// returns (rueidis's, after its topology refresh): wait a bounded
		// time for one.
		var list string
		for deadline := time.Now().Add(3 * time.Second); ; {
			list, err = clientList(ctx, env.Admin)
			if err != nil {
				t.Fatalf("CLIENT LIST: %v", err)
			}
			if strings.Contains(list, " name="+want+" ") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(list, " name="+want+" ") {
			t.Errorf("no connection named %q in CLIENT LIST:\n%s", want, list)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}

	bad := env.Conn
	bad.URL = "redis://127.0.0.1:1" // nothing listens on port 1
	if b, err := open(ctx, bad); err == nil {
		_ = b.Close()
		t.Errorf("open %s: no error", bad.URL)
	}
	bad.URL = "http://127.0.0.1:6379"
	if b, err := open(ctx, bad); err == nil {
		_ = b.Close()
		t.Errorf("open %s: no error", bad.URL)
	}
}

func openBackend(t *testing.T, env Env, open impl.Opener) impl.Backend {
	t.Helper()
	b, err := open(testContext(t), env.Conn)
	if err != nil {
		t.Fatalf("open backend on %s: %v", env.Name, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close backend: %v", err)
		}
	})
	return b
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func testStockStrategies(t *testing.T, env Env, open impl.Opener) {
	b := openBackend(t, env, open)
	sb, ok := b.(impl.StockBackend)
	if !ok {
		t.Fatalf("%T does not implement impl.StockBackend", b)
	}
	ks := env.Keyspace(t)
	for _, name := range impl.StockStrategies() {
		if _, err := sb.Stock(name, impl.StockOptions{Keys: ks}); err != nil {
			t.Errorf("Stock(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "NAIVE", "lua ", "nope"} {
		_, err := sb.Stock(name, impl.StockOptions{Keys: ks})
		if !errors.Is(err, impl.ErrUnknownStrategy) {
			t.Errorf("Stock(%q) error = %v, want ErrUnknownStrategy", name, err)
		}
	}
	if _, err := sb.Stock(impl.StockLua, impl.StockOptions{}); err == nil {
		t.Errorf("Stock without Keys: no error")
	}
}

var stockTests = []stockTest{
	{name: "RoundTrip", run: testRoundTrip},
	{name: "DeductWithinStock", run: testDeductWithinStock},
	{name: "RefuseBeyondStock", run: testRefuseBeyondStock},
	{name: "RefuseUnsetItem", run: testRefuseUnsetItem},
	{name: "InvalidQuantity", run: testInvalidQuantity},
	{name: "OddItems", run: testOddItems},
	{name: "MultiUnit", run: testMultiUnit},
	{name: "CanceledContext", run: testCanceledContext},
	{name: "ConcurrentExact", only: safeStrategies, run: testConcurrentExact},
	{name: "ConcurrentMultiUnit", only: atomicStrategies, run: testConcurrentMultiUnit},
	{name: "ScriptFlush", only: scriptStrategies, run: testScriptFlush},
	{name: "WatchContention", only: []string{impl.StockWatch}, run: testWatchContention},
	{name: "NaiveThink", only: []string{impl.StockNaive}, run: testNaiveThink},
	{name: "NaiveConcurrentRuns", only: []string{impl.StockNaive}, run: testNaiveConcurrentRuns},
	{name: "ShardedSpread", only: []string{impl.StockSharded}, run: testShardedSpread},
	{name: "ShardedStrandedUnits", only: []string{impl.StockSharded}, run: testShardedStranded},
	{name: "PurchaseRecordedIffTaken", run: testPurchaseRecorded},
	{name: "PurchaseInvalid", run: testPurchaseInvalid},
	{name: "PurchaseCanceledContext", run: testPurchaseCanceled},
	{name: "PurchaseIdempotent", only: idempotentStrategies, run: testPurchaseIdempotent},
	{name: "PurchaseSameIDConcurrently", only: idempotentStrategies, run: testPurchaseSameIDConcurrently},
	{name: "PurchaseNotIdempotent", only: resendingStrategies, run: testPurchaseNotIdempotent},
	{name: "PurchaseSameIDConcurrentlyDeductsAgain", only: []string{impl.StockLua}, run: testPurchaseSameIDDeductsAgain},
	{name: "ConcurrentPurchases", only: safeStrategies, run: testConcurrentPurchases},
	{name: "PurchaseScriptFlush", only: scriptStrategies, run: testPurchaseScriptFlush},
	{name: "ShardedPurchaseAcrossShards", only: []string{impl.StockSharded}, run: testShardedPurchaseAcross},
	{name: "SlotsLayout", only: []string{impl.StockShardedSlots}, run: testSlotsLayout},
	{name: "SlotsWalkAcrossShards", only: []string{impl.StockShardedSlots}, run: testSlotsWalkAcross},
	{name: "SlotsShortWalkWhileHeld", only: []string{impl.StockShardedSlots}, run: testSlotsContention},
}

func testRoundTrip(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	wantGet(t, ctx, s, "i", 0)
	mustSet(t, ctx, s, "i", 10)
	wantGet(t, ctx, s, "i", 10)
	if n, err := s.Restore(ctx, "i", 5); err != nil || n != 15 {
		t.Errorf("Restore(5) = %d, %v; want 15, nil", n, err)
	}
	wantGet(t, ctx, s, "i", 15)
	wantRaw(t, ctx, c, ks, "i", 15)
	mustSet(t, ctx, s, "i", 3) // Set replaces
	wantGet(t, ctx, s, "i", 3)
	mustSet(t, ctx, s, "i", 0)
	wantGet(t, ctx, s, "i", 0)
	if n, err := s.Restore(ctx, "i", impl.MaxQuantity); err != nil || n != impl.MaxQuantity {
		t.Errorf("Restore(MaxQuantity) = %d, %v; want %d, nil", n, err, impl.MaxQuantity)
	}
	big := int64(1) << 40 // a stock may exceed one deduction's bound
	mustSet(t, ctx, s, "j", big)
	wantGet(t, ctx, s, "j", big)
	wantRaw(t, ctx, c, ks, "j", big)
}

func testDeductWithinStock(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)
	wantDeduct(t, ctx, s, "i", 3, impl.Deduction{OK: true, Remaining: 7})
	wantGet(t, ctx, s, "i", 7)
	wantDeduct(t, ctx, s, "i", 7, impl.Deduction{OK: true, Remaining: 0})
	wantGet(t, ctx, s, "i", 0)
	wantRaw(t, ctx, c, ks, "i", 0)
	mustSet(t, ctx, s, "max", impl.MaxQuantity)
	wantDeduct(t, ctx, s, "max", impl.MaxQuantity, impl.Deduction{OK: true, Remaining: 0})
}

func testRefuseBeyondStock(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 5)
	want := impl.Deduction{OK: false, Remaining: 5}
	if c.strategy == impl.StockDecr {
		want.Remaining = -1 // the DECRBY reply, compensated afterwards
	}
	wantDeduct(t, ctx, s, "i", 6, want)
	wantGet(t, ctx, s, "i", 5)
	wantRaw(t, ctx, c, ks, "i", 5)
	mustSet(t, ctx, s, "zero", 0)
	if c.strategy == impl.StockDecr {
		want.Remaining = -impl.MaxQuantity
	} else {
		want.Remaining = 0
	}
	wantDeduct(t, ctx, s, "zero", impl.MaxQuantity, want)
	wantGet(t, ctx, s, "zero", 0)
}

func testRefuseUnsetItem(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, _ := c.stock(t, nil)
	d, err := s.Deduct(ctx, "never-set", 1)
	if err != nil || d.OK {
		t.Errorf("Deduct(never set) = %+v, %v; want refused, nil", d, err)
	}
	wantGet(t, ctx, s, "never-set", 0)
}

func testInvalidQuantity(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)

	// A strategy on a closed backend: any Redis call would fail with a
	// connection error, so ErrInvalidQuantity proves validation came first.
	closed, err := c.open(ctx, c.env.Conn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	cs, err := closed.(impl.StockBackend).Stock(c.strategy, impl.StockOptions{Keys: ks, Shards: testShards})
	if err != nil {
		t.Fatalf("Stock: %v", err)
	}
	if err := closed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for _, q := range []int64{0, -1, impl.MaxQuantity + 1, math.MinInt64, math.MaxInt64} {
		for _, st := range []impl.Stock{s, cs} {
			if _, err := st.Deduct(ctx, "i", q); !errors.Is(err, impl.ErrInvalidQuantity) {
				t.Errorf("Deduct(%d) error = %v, want ErrInvalidQuantity", q, err)
			}
			if _, err := st.Restore(ctx, "i", q); !errors.Is(err, impl.ErrInvalidQuantity) {
				t.Errorf("Restore(%d) error = %v, want ErrInvalidQuantity", q, err)
			}
		}
	}
	for _, st := range []impl.Stock{s, cs} {
		if err := st.Set(ctx, "i", -1); !errors.Is(err, impl.ErrInvalidQuantity) {
			t.Errorf("Set(-1) error = %v, want ErrInvalidQuantity", err)
		}
	}
	// The closed backend does fail on a valid call: the check above meant
	// it. (Not where Close is asynchronous: the call might still land.)
	if !c.env.CloseIsAsync {
		if _, err := cs.Deduct(ctx, "i", 1); err == nil || errors.Is(err, impl.ErrInvalidQuantity) {
			t.Errorf("Deduct(1) on a closed backend: error = %v, want a connection error", err)
		}
	}
	wantGet(t, ctx, s, "i", 10)
	wantRaw(t, ctx, c, ks, "i", 10)
}

func testOddItems(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	for i, item := range oddItems {
		mustSet(t, ctx, s, item, int64(100+i))
	}
	for i, item := range oddItems { // distinct ids never share a key
		wantGet(t, ctx, s, item, int64(100+i))
		wantRaw(t, ctx, c, ks, item, int64(100+i))
	}
	for i, item := range oddItems {
		wantDeduct(t, ctx, s, item, 2, impl.Deduction{OK: true, Remaining: int64(98 + i)})
		if n, err := s.Restore(ctx, item, 1); err != nil || n != int64(99+i) {
			t.Errorf("Restore(%q, 1) = %d, %v; want %d, nil", item, n, err, 99+i)
		}
	}
	// Every key is under the prefix, and there are exactly the expected ones.
	var want []string
	for _, item := range oddItems {
		want = append(want, rawKeys(c, ks, item)...)
	}
	got := scanKeys(t, ctx, c.env.Admin, ks)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys under %q:\n got %q\nwant %q", ks.Prefix(), got, want)
	}
}

func testMultiUnit(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", multiUnits)
	okCount := 0
	for range multiUnits {
		d, err := s.Deduct(ctx, "i", multiQty)
		if err != nil {
			t.Fatalf("Deduct(%d): %v", multiQty, err)
		}
		if !d.OK {
			want := int64(multiUnits % multiQty)
			if c.strategy == impl.StockDecr {
				want -= multiQty
			}
			if d.Remaining != want {
				t.Errorf("refusal reported Remaining %d, want %d", d.Remaining, want)
			}
			break
		}
		okCount++
		want := impl.Deduction{OK: true, Remaining: int64(multiUnits - okCount*multiQty)}
		if d.Retries = 0; !sameDeduction(s, d, want) {
			t.Errorf("deduction %d reported Remaining %d, want %d", okCount, d.Remaining, want.Remaining)
		}
	}
	if okCount != multiUnits/multiQty {
		t.Errorf("%d deductions of %d from %d succeeded, want %d", okCount, multiQty, multiUnits, multiUnits/multiQty)
	}
	wantGet(t, ctx, s, "i", multiUnits%multiQty)
	wantRaw(t, ctx, c, ks, "i", multiUnits%multiQty)
}

func testCanceledContext(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, _ := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 5)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if d, err := s.Deduct(canceled, "i", 1); err == nil {
		t.Errorf("Deduct with a canceled context = %+v, nil; want an error", d)
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Deduct with a canceled context: error %v does not wrap context.Canceled", err)
	}
	wantGet(t, ctx, s, "i", 5)
}

// result counts the outcomes of concurrent deductions.
type result struct {
	ok, refused, errs atomic.Int64
	mu                sync.Mutex
	firstErr          error
}

func (r *result) record(d impl.Deduction, err error) {
	switch {
	case err != nil:
		r.errs.Add(1)
		r.mu.Lock()
		if r.firstErr == nil {
			r.firstErr = err
		}
		r.mu.Unlock()
	case d.OK:
		r.ok.Add(1)
	default:
		r.refused.Add(1)
	}
}

// hammer runs n workers, each calling fn until it returns false or count
// calls were made.
func hammer(n, count int, fn func() bool) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			for range count {
				if !fn() {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
}

func testConcurrentExact(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	stock := int64(workers*perWorker - shortfall)
	mustSet(t, ctx, s, "hot", stock)
	var r result
	hammer(workers, perWorker, func() bool {
		r.record(s.Deduct(ctx, "hot", 1))
		return true
	})
	if r.errs.Load() != 0 {
		t.Errorf("%d deductions failed, first: %v", r.errs.Load(), r.firstErr)
	}
	if r.ok.Load() != stock || r.refused.Load() != shortfall {
		t.Errorf("%d×%d deductions of 1 from %d: %d succeeded, %d refused; want %d and %d",
			workers, perWorker, stock, r.ok.Load(), r.refused.Load(), stock, shortfall)
	}
	wantGet(t, ctx, s, "hot", 0)
	wantRaw(t, ctx, c, ks, "hot", 0)
}

func testConcurrentMultiUnit(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "hot", multiUnits)
	var r result
	hammer(multiWorkers, multiUnits, func() bool {
		d, err := s.Deduct(ctx, "hot", multiQty)
		r.record(d, err)
		return err == nil && d.OK
	})
	if r.errs.Load() != 0 {
		t.Errorf("%d deductions failed, first: %v", r.errs.Load(), r.firstErr)
	}
	if want := int64(multiUnits / multiQty); r.ok.Load() != want {
		t.Errorf("%d workers taking %d from %d: %d succeeded, want %d", multiWorkers, multiQty, multiUnits, r.ok.Load(), want)
	}
	wantGet(t, ctx, s, "hot", multiUnits%multiQty)
	wantRaw(t, ctx, c, ks, "hot", multiUnits%multiQty)
}

func testScriptFlush(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", 10)
	wantDeduct(t, ctx, s, "i", 1, impl.Deduction{OK: true, Remaining: 9})
	if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	wantDeduct(t, ctx, s, "i", 1, impl.Deduction{OK: true, Remaining: 8})
	wantDeduct(t, ctx, s, "i", 8, impl.Deduction{OK: true, Remaining: 0})
	wantRaw(t, ctx, c, ks, "i", 0)
	if c.strategy == impl.StockSharded { // the fallback script too
		mustSet(t, ctx, s, "j", testShards)
		if err := c.env.Admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		wantDeduct(t, ctx, s, "j", testShards/2+1, impl.Deduction{OK: true, Remaining: testShards/2 - 1})
	}
}

func testWatchContention(t *testing.T, c stockCase) {
	ctx := testContext(t)
	const retries = 1
	s, ks := c.stock(t, func(o *impl.StockOptions) { o.MaxRetries = retries })
	const stock = 10 * workers * perWorker
	mustSet(t, ctx, s, "hot", stock)
	var (
		ok, contention atomic.Int64
		mu             sync.Mutex
		errs           []error
	)
	hammer(workers, perWorker, func() bool {
		d, err := s.Deduct(ctx, "hot", 1)
		if d.Retries > retries || d.Retries < 0 {
			mu.Lock()
			errs = append(errs, fmt.Errorf("Retries = %d, bound %d", d.Retries, retries))
			mu.Unlock()
		}
		switch {
		case errors.Is(err, impl.ErrContention):
			contention.Add(1)
		case err != nil:
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		case d.OK:
			ok.Add(1)
		default:
			mu.Lock()
			errs = append(errs, fmt.Errorf("refused with stock left: %+v", d))
			mu.Unlock()
		}
		return true
	})
	if len(errs) > 0 {
		t.Errorf("%d unexpected outcomes, first: %v", len(errs), errs[0])
	}
	t.Logf("MaxRetries %d: %d succeeded, %d gave up on contention", retries, ok.Load(), contention.Load())
	if ok.Load()+contention.Load() != workers*perWorker {
		t.Errorf("outcomes %d + %d, want %d", ok.Load(), contention.Load(), workers*perWorker)
	}
	wantGet(t, ctx, s, "hot", stock-ok.Load())
	wantRaw(t, ctx, c, ks, "hot", stock-ok.Load())
}

func testNaiveThink(t *testing.T, c stockCase) {
	ctx := testContext(t)
	const think = 30 * time.Millisecond
	s, _ := c.stock(t, func(o *impl.StockOptions) { o.Think = think })
	mustSet(t, ctx, s, "i", 5)
	start := time.Now()
	wantDeduct(t, ctx, s, "i", 1, impl.Deduction{OK: true, Remaining: 4})
	if el := time.Since(start); el < think {
		t.Errorf("Deduct with Think %v took %v", think, el)
	}

	slow, _ := c.stock(t, func(o *impl.StockOptions) { o.Think = time.Minute })
	mustSet(t, ctx, slow, "i", 5)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := slow.Deduct(short, "i", 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deduct past its deadline: error %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Deduct ignored its context for %v", el)
	}
	wantGet(t, ctx, slow, "i", 5)
}

func testNaiveConcurrentRuns(t *testing.T, c stockCase) {
	// The scenarios measure naive's overselling; here it only has to run
	// cleanly: no errors, at least one sale, and a stock that ends at 0.
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "hot", 1)
	var r result
	hammer(workers, 1, func() bool {
		r.record(s.Deduct(ctx, "hot", 1))
		return true
	})
	if r.errs.Load() != 0 {
		t.Errorf("%d deductions failed, first: %v", r.errs.Load(), r.firstErr)
	}
	if r.ok.Load() < 1 || r.ok.Load()+r.refused.Load() != workers {
		t.Errorf("%d succeeded, %d refused; want at least 1 and %d in all", r.ok.Load(), r.refused.Load(), workers)
	}
	t.Logf("naive: %d buyers of 1 unit, %d served", workers, r.ok.Load())
	wantGet(t, ctx, s, "hot", 0)
	wantRaw(t, ctx, c, ks, "hot", 0)
}

func testShardedSpread(t *testing.T, c stockCase) {
	ctx := testContext(t)
	for _, tc := range []struct {
		shards int
		units  int64
		want   []int64
	}{
		{8, 100, []int64{13, 13, 13, 13, 12, 12, 12, 12}},
		{8, 3, []int64{1, 1, 1, 0, 0, 0, 0, 0}},
		{8, 0, []int64{0, 0, 0, 0, 0, 0, 0, 0}},
		{3, 10, []int64{4, 3, 3}},
		{1, 7, []int64{7}},
	} {
		s, ks := c.stock(t, func(o *impl.StockOptions) { o.Shards = tc.shards })
		// A plain counter from another strategy is removed by Set.
		plain := impl.StockKey(ks, "i")
		if err := c.env.Admin.Set(ctx, plain, 99, 0).Err(); err != nil {
			t.Fatal(err)
		}
		mustSet(t, ctx, s, "i", tc.units)
		if got := shardValues(t, ctx, c.env.Admin, ks, "i", tc.shards); !slices.Equal(got, tc.want) {
			t.Errorf("%d shards, Set(%d): shards hold %v, want %v", tc.shards, tc.units, got, tc.want)
		}
		if n, err := c.env.Admin.Exists(ctx, plain).Result(); err != nil || n != 0 {
			t.Errorf("Set left the plain key %q (exists=%d, %v)", plain, n, err)
		}
		wantGet(t, ctx, s, "i", tc.units)
		if n, err := s.Restore(ctx, "i", 2); err != nil || n != tc.units+2 {
			t.Errorf("Restore(2) = %d, %v; want %d", n, err, tc.units+2)
		}
	}
}

func testShardedStranded(t *testing.T, c stockCase) {
	ctx := testContext(t)
	s, ks := c.stock(t, nil)
	mustSet(t, ctx, s, "i", testShards) // one unit on each shard
	wantDeduct(t, ctx, s, "i", 5, impl.Deduction{OK: true, Remaining: testShards - 5})
	wantDeduct(t, ctx, s, "i", testShards-5+1, impl.Deduction{OK: false, Remaining: testShards - 5})
	wantDeduct(t, ctx, s, "i", testShards-5, impl.Deduction{OK: true, Remaining: 0})
	for i, v := range shardValues(t, ctx, c.env.Admin, ks, "i", testShards) {
		if v != 0 {
			t.Errorf("shard %d holds %d, want 0", i, v)
		}
	}
}

func mustSet(t *testing.T, ctx context.Context, s impl.Stock, item string, units int64) {
	t.Helper()
	if err := s.Set(ctx, item, units); err != nil {
		t.Fatalf("Set(%q, %d): %v", item, units, err)
	}
}

func wantGet(t *testing.T, ctx context.Context, s impl.Stock, item string, want int64) {
	t.Helper()
	got, err := s.Get(ctx, item)
	if err != nil || got != want {
		t.Errorf("Get(%q) = %d, %v; want %d, nil", item, got, err, want)
	}
}

func wantDeduct(t *testing.T, ctx context.Context, s impl.Stock, item string, qty int64, want impl.Deduction) {
	t.Helper()
	got, err := s.Deduct(ctx, item, qty)
	got.Retries = 0 // not asserted: it depends on timing
	if err != nil || !sameDeduction(s, got, want) {
		t.Errorf("Deduct(%q, %d) = %+v, %v; want %+v, nil", item, qty, got, err, want)
	}
}

// rawKeys returns the keys the case's strategy keeps item's stock in.
func rawKeys(c stockCase, ks impl.Keyspace, item string) []string {
	switch c.strategy {
	case impl.StockSharded:
		keys := make([]string, testShards)
		for i := range keys {
			keys[i] = impl.StockShardKey(ks, item, i)
		}
		return keys
	case impl.StockShardedSlots:
		return impl.NewSlotShards(ks, testShards).StockKeys(item)
	}
	return []string{impl.StockKey(ks, item)}
}

// getAll reads keys through the admin client, one GET each in one
// pipeline (keys in different slots of a cluster included); a missing key
// is nil.
func getAll(ctx context.Context, admin redis.UniversalClient, keys []string) ([]any, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := admin.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, err
		default:
			out[i] = v
		}
	}
	return out, nil
}

// wantRaw checks, through the admin client, that item's raw stock keys add
// up to want and that none is negative.
func wantRaw(t *testing.T, ctx context.Context, c stockCase, ks impl.Keyspace, item string, want int64) {
	t.Helper()
	keys := rawKeys(c, ks, item)
	vals, err := getAll(ctx, c.env.Admin, keys)
	if err != nil {
		t.Errorf("GET %q: %v", keys, err)
		return
	}
	var sum int64
	for i, v := range vals {
		if v == nil {
			continue
		}
		n, err := strconv.ParseInt(v.(string), 10, 64)
		if err != nil {
			t.Errorf("key %q holds %q, not an integer", keys[i], v)
			continue
		}
		if n < 0 {
			t.Errorf("key %q holds %d: negative stock", keys[i], n)
		}
		sum += n
	}
	if sum != want {
		t.Errorf("server holds %d units of %q, want %d", sum, item, want)
	}
}

// shardValues reads item's shards through the admin client; missing is 0.
func shardValues(t *testing.T, ctx context.Context, admin redis.UniversalClient, ks impl.Keyspace, item string, shards int) []int64 {
	t.Helper()
	keys := make([]string, shards)
	for i := range keys {
		keys[i] = impl.StockShardKey(ks, item, i)
	}
	vals, err := admin.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatalf("MGET: %v", err)
	}
	out := make([]int64, shards)
	for i, v := range vals {
		if v != nil {
			out[i], _ = strconv.ParseInt(v.(string), 10, 64)
		}
	}
	return out
}

// scanKeys lists the keys under ks's prefix, sorted: SCAN on the server,
// or on every master of a cluster.
func scanKeys(t *testing.T, ctx context.Context, admin redis.UniversalClient, ks impl.Keyspace) []string {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	err := redisenv.ForEachMaster(ctx, admin, func(ctx context.Context, node *redis.Client) error {
		iter := node.Scan(ctx, 0, ks.Pattern(), 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// clientList is CLIENT LIST of the server, or of every master of a
// cluster, one listing after the other.
func clientList(ctx context.Context, admin redis.UniversalClient) (string, error) {
	var mu sync.Mutex
	var b strings.Builder
	err := redisenv.ForEachMaster(ctx, admin, func(ctx context.Context, node *redis.Client) error {
		list, err := node.ClientList(ctx).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		b.WriteString(list)
		mu.Unlock()
		return nil
	})
	return b.String(), err
}
