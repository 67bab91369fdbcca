package bench_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/paybench/paybench/bench"
)

// errSoldOut is the fake stock's refusal.
var errSoldOut = errors.New("sold out")

// A closed loop: two workers make 10 calls of a fake deduction against a
// local stock of 7 units between them, each worker starting its next call
// when the last one ends. Every call is counted once; the refusals are
// counted by class.
func ExampleRun() {
	var stock atomic.Int64
	stock.Store(7)
	deduct := func(ctx context.Context, w *bench.Worker) error {
		if stock.Add(-1) < 0 {
			stock.Add(1)
			return errSoldOut
		}
		return nil
	}
	st, err := bench.Run(context.Background(), bench.Config{Concurrency: 2, Requests: 10}, deduct)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ops:", st.Ops)
	fmt.Println("failed:", st.Errors)
	fmt.Println("stock left:", stock.Load())
	// Output:
	// ops: 10
	// failed: map[other:3]
	// stock left: 0
}

// An open loop: the pacer says when each operation is due (here a rate so
// high that every one is due at once), and a fixed count runs exactly its
// slots, none dropped.
func ExampleRun_openLoop() {
	var calls atomic.Int64
	st, err := bench.Run(context.Background(), bench.Config{Concurrency: 4, Requests: 100, Pacer: bench.ConstantPacer{Rate: 1e6}},
		func(ctx context.Context, w *bench.Worker) error {
			calls.Add(1)
			return nil
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ops:", st.Ops, "calls:", calls.Load(), "dropped:", st.Dropped)
	// Output:
	// ops: 100 calls: 100 dropped: 0
}

// ParseRate reads the --rate syntax: a constant rate, or a ramp.
func ExampleParseRate() {
	for _, s := range []string{"2000", "1000:5000", "fast"} {
		p, err := bench.ParseRate(s, 0, 10*time.Second)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(p)
	}
	// Output:
	// 2000/s
	// 1000/s→5000/s over 10s
	// error: bad rate "fast": want operations per second, such as 2000 or 1000:5000
}
