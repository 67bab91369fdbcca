package scripts_test

import (
	"strings"
	"testing"

	"github.com/paybench/paybench/impl/scripts"
)

func TestEmbedded(t *testing.T) {
	for name, src := range map[string]string{
		"StockDeduct":           scripts.StockDeduct,
		"StockShardDeduct":      scripts.StockShardDeduct,
		"StockShardedDeductAll": scripts.StockShardedDeductAll,
		"StockPurchase":         scripts.StockPurchase,
		"StockPurchasePlain":    scripts.StockPurchasePlain,
		"StockShardedPurchase":  scripts.StockShardedPurchase,
	} {
		if !strings.Contains(src, "redis.call") || !strings.Contains(src, "KEYS[1]") && !strings.Contains(src, "unpack(KEYS)") {
			t.Errorf("%s does not look like an embedded script:\n%s", name, src)
		}
	}
}
