package impl_test

import (
	"fmt"

	"github.com/paybench/paybench/impl"
)

// Every key of a run lives under its prefix; identifiers are escaped so
// that any string is safe, and the keys of one item share one hash tag
// (one Redis Cluster slot), so a script may touch them all.
func ExampleKeyspace_Tagged() {
	ks, err := impl.NewKeyspace("pb:run-1:")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(impl.StockKey(ks, "sku-1"))
	fmt.Println(impl.StockShardKey(ks, "sku-1", 3))
	fmt.Println(ks.Tagged("stock", "odd {id}: 50%"))
	fmt.Println(ks.Key("plain", ""))
	fmt.Println(ks.Pattern())
	// Output:
	// pb:run-1:stock:{sku-1}
	// pb:run-1:stock:{sku-1}:shard:3
	// pb:run-1:stock:{odd%20%7Bid%7D%3A%2050%25}
	// pb:run-1:plain:%
	// pb:run-1:*
}
