package impltest

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/paybench/paybench/impl"
)

// RunScript runs the conformance suite of impl.ScriptBackend against env:
// integer, array and nil replies, replies that are neither, error replies,
// the EVAL fallback after SCRIPT FLUSH, and concurrent runs that must all
// apply exactly once.
func RunScript(t *testing.T, env Env, open impl.Opener) {
	t.Helper()
	b := openBackend(t, env, open)
	sb, ok := b.(impl.ScriptBackend)
	if !ok {
		t.Fatalf("%T does not implement impl.ScriptBackend", b)
	}
	ks := env.Keyspace(t)
	key := ks.Tagged("script", "counter")
	incr := sb.Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")

	t.Run("Replies", func(t *testing.T) {
		ctx := testContext(t)
		for _, tc := range []struct {
			name, src string
			keys      []string
			args      []string
			want      []int64
			wantErr   string
		}{
			{name: "integer", src: "return tonumber(ARGV[1]) * 2", args: []string{"21"}, want: []int64{42}},
			{name: "array", src: "return {tonumber(ARGV[1]), 2, -3}", args: []string{"7"}, want: []int64{7, 2, -3}},
			{name: "empty array", src: "return {}", want: []int64{}},
			{name: "nil", src: "return false", want: []int64{}},
			{name: "keys and args", src: "return {#KEYS, #ARGV}", keys: []string{key, key}, args: []string{"a", "b", "c"}, want: []int64{2, 3}},
			{name: "string", src: "return 'x'", wantErr: "integer"},
			{name: "status", src: "return redis.status_reply('OK')", wantErr: "integer"},
			{name: "array of strings", src: "return {1, 'x'}", wantErr: "integer"},
			{name: "error reply", src: "return redis.error_reply('ERR boom')", wantErr: "boom"},
			{name: "runtime error", src: "return redis.call('NOSUCHCOMMAND')", wantErr: "Unknown Redis command"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := sb.Script(tc.src).Run(ctx, tc.keys, tc.args...)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("Run = %v, %v; want an error containing %q", got, err, tc.wantErr)
					}
					return
				}
				if err != nil || got == nil || !slices.Equal(got, tc.want) {
					t.Fatalf("Run = %#v, %v; want %v", got, err, tc.want)
				}
			})
		}
	})

	t.Run("FlushFallback", func(t *testing.T) {
		ctx := testContext(t)
		if _, err := incr.Run(ctx, []string{key}, "1"); err != nil {
			t.Fatal(err)
		}
		if err := env.Admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		got, err := incr.Run(ctx, []string{key}, "1")
		if err != nil {
			t.Fatalf("after SCRIPT FLUSH: %v", err)
		}
		if v, err := env.Admin.Get(ctx, key).Int64(); err != nil || len(got) != 1 || got[0] != v {
			t.Fatalf("replied %v; the server holds %d (%v)", got, v, err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		ctx := testContext(t)
		k := ks.Tagged("script", "concurrent")
		var wg sync.WaitGroup
		errs := make(chan error, workers*perWorker)
		for range workers {
			wg.Go(func() {
				for range perWorker {
					if _, err := incr.Run(ctx, []string{k}, "1"); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if v, err := env.Admin.Get(ctx, k).Int64(); err != nil || v != workers*perWorker {
			t.Fatalf("counter %d (%v), want %d", v, err, workers*perWorker)
		}
	})
}
