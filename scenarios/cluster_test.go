package scenarios

import "testing"

func TestOneTag(t *testing.T) {
	tests := []struct {
		keys []string
		want bool
	}{
		{[]string{"p:stock:{a}:shard:0", "p:stock:{a}:shard:1"}, true},
		{[]string{"p:stock:{a}"}, true},
		{[]string{"p:stock:{a}", "p:stock:{b}"}, false},
		{[]string{"p:stock:a"}, false},
		{[]string{"p:stock:{}:x{a}"}, false}, // an empty tag hashes the whole key
		{[]string{"p:{a}:{b}", "q:{a}"}, true},
	}
	for _, tc := range tests {
		if got := oneTag(tc.keys); got != tc.want {
			t.Errorf("oneTag(%q) = %v, want %v", tc.keys, got, tc.want)
		}
	}
}
