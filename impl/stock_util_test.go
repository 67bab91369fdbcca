package impl

import (
	"errors"
	"slices"
	"testing"
)

func TestValidateUnits(t *testing.T) {
	for _, tc := range []struct {
		units int64
		ok    bool
	}{{0, true}, {1, true}, {MaxQuantity + 1, true}, {-1, false}} {
		err := ValidateUnits(tc.units)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidQuantity)) {
			t.Errorf("ValidateUnits(%d) = %v", tc.units, err)
		}
	}
}

func TestStockShardKeys(t *testing.T) {
	k, err := NewKeyspace("t:")
	if err != nil {
		t.Fatal(err)
	}
	got := StockShardKeys(k, "a", 2, 3)
	want := []string{StockShardKey(k, "a", 2), StockShardKey(k, "a", 0), StockShardKey(k, "a", 1)}
	if !slices.Equal(got, want) {
		t.Errorf("StockShardKeys = %v, want %v", got, want)
	}
}

func TestSplitUnits(t *testing.T) {
	for _, tc := range []struct {
		units int64
		n     int
		want  []int64
	}{
		{0, 3, []int64{0, 0, 0}},
		{10, 3, []int64{4, 3, 3}},
		{2, 4, []int64{1, 1, 0, 0}},
		{8, 8, []int64{1, 1, 1, 1, 1, 1, 1, 1}},
	} {
		if got := SplitUnits(tc.units, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("SplitUnits(%d, %d) = %v, want %v", tc.units, tc.n, got, tc.want)
		}
	}
}

func TestDecodeDeduction(t *testing.T) {
	for _, tc := range []struct {
		vals    []int64
		want    Deduction
		wantErr bool
	}{
		{[]int64{1, 5}, Deduction{OK: true, Remaining: 5}, false},
		{[]int64{0, 2}, Deduction{Remaining: 2}, false},
		{[]int64{1, 4, 0}, Deduction{OK: true, Remaining: 4}, false},
		{[]int64{1, 4, 1}, Deduction{OK: true, Remaining: 4, Replayed: true}, false},
		{[]int64{0, 3, 0}, Deduction{Remaining: 3}, false},
		{[]int64{1}, Deduction{}, true},
		{[]int64{1, 2, 3, 4}, Deduction{}, true},
		{nil, Deduction{}, true},
	} {
		got, err := DecodeDeduction(tc.vals)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("DecodeDeduction(%v) = %+v, %v", tc.vals, got, err)
		}
	}
}

func TestValidatePurchaseID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"b1", true},
		{"{odd}:id with spaces\x00", true},
		{string(make([]byte, MaxPurchaseID)), true},
		{"", false},
		{string(make([]byte, MaxPurchaseID+1)), false},
	} {
		err := ValidatePurchaseID(tc.id)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidID)) {
			t.Errorf("ValidatePurchaseID(%d bytes) = %v", len(tc.id), err)
		}
	}
}

func TestPurchasesKeySharesTheStockSlot(t *testing.T) {
	k := MustKeyspace("t:")
	for _, item := range []string{"sku-1", "", "{", "a:b"} {
		p, s := PurchasesKey(k, item), StockShardKey(k, item, 3)
		if hashTag(p) != hashTag(s) || hashTag(p) != hashTag(StockKey(k, item)) {
			t.Errorf("item %q: purchases %q and stock %q do not share a hash tag", item, p, s)
		}
	}
}

func TestDecodeWaitedDeduction(t *testing.T) {
	for _, tc := range []struct {
		vals        []int64
		confirmed   bool
		unconfirmed bool
	}{
		{[]int64{1, 7}, true, false},
		{[]int64{1, 7}, false, true},
		{[]int64{0, 0}, false, false},    // refused: nothing to confirm
		{[]int64{1, 7, 1}, false, false}, // a replay wrote nothing now
		{[]int64{1, 7, 0}, false, true},
	} {
		d, err := DecodeWaitedDeduction(tc.vals, tc.confirmed)
		if err != nil || d.Unconfirmed != tc.unconfirmed {
			t.Errorf("DecodeWaitedDeduction(%v, %v) = %+v, %v; want unconfirmed %v", tc.vals, tc.confirmed, d, err, tc.unconfirmed)
		}
	}
	if _, err := DecodeWaitedDeduction([]int64{1}, true); err == nil {
		t.Error("a malformed reply decoded")
	}
}
