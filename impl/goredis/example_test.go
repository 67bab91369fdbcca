package goredis_test

import (
	"context"
	"fmt"
	"io"

	"github.com/paybench/paybench/bench/redisenv"
	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/goredis"
)

// The stock contract on go-redis, with the lua strategy (one script checks
// and deducts atomically): two orders of 2 units against a stock of 3, the
// second refused without touching the stock. The example runs on an
// in-process embedded Redis so that it needs no server; paybench's
// conformance suite (impl/impltest) runs the same contract on a real one.
func ExampleClient_Stock() {
	ctx := context.Background()
	srv, err := redisenv.Provide(ctx, redisenv.Options{Force: redisenv.KindEmbedded,
		Getenv: func(string) string { return "" }, Warn: io.Discard})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	client, err := goredis.Open(ctx, impl.ConnConfig{URL: srv.URL, Password: srv.Password})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	stock, err := client.Stock(impl.StockLua, impl.StockOptions{Keys: impl.MustKeyspace("pb:example:")})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := stock.Set(ctx, "sku-1", 3); err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		d, err := stock.Deduct(ctx, "sku-1", 2)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("deduct 2: ok=%v remaining=%d\n", d.OK, d.Remaining)
	}
	left, err := stock.Get(ctx, "sku-1")
	fmt.Println("stock:", left, err)
	// Output:
	// deduct 2: ok=true remaining=1
	// deduct 2: ok=false remaining=1
	// stock: 1 <nil>
}
