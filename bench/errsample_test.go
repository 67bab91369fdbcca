package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// fakeRedisReply is an error reply as go-redis reports one (it has
// redis.Error's RedisError method), without importing the library.
type fakeRedisReply string

func (e fakeRedisReply) Error() string { return string(e) }
func (e fakeRedisReply) RedisError()   {}

func TestDefaultClassifyIsImplClassify(t *testing.T) {
	noperm := fmt.Errorf("goredis stock lua: deduct %q: %w", "sku",
		fakeRedisReply("NOPERM this user has no permissions to run the 'evalsha' command"))
	st, err := Run(context.Background(), Config{Concurrency: 2, Requests: 20}, func(ctx context.Context, w *Worker) error {
		switch w.Seq % 4 {
		case 0:
			return noperm
		case 1:
			return fmt.Errorf("deduct: %w", context.DeadlineExceeded)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{impl.ClassNoPerm: 5, impl.ClassTimeout: 5}
	if fmt.Sprint(st.Errors) != fmt.Sprint(want) {
		t.Fatalf("errors = %v, want %v", st.Errors, want)
	}
	if got := st.ErrorSamples[impl.ClassNoPerm]; got != "NOPERM this user has no permissions to run the 'evalsha' command" {
		t.Errorf("noperm sample = %q, want the server's own words", got)
	}
	if got := st.ErrorSamples[impl.ClassTimeout]; got != "deduct: context deadline exceeded" {
		t.Errorf("timeout sample = %q, want the whole message", got)
	}
}

func TestErrorSamplesKeepTheFirstOfEachClass(t *testing.T) {
	for _, open := range []bool{false, true} {
		t.Run(fmt.Sprintf("open=%v", open), func(t *testing.T) {
			cfg := Config{Concurrency: 4, Requests: 40, Classify: func(err error) string {
				class, _, _ := strings.Cut(err.Error(), " ")
				return class
			}}
			if open {
				cfg.Pacer = ConstantPacer{Rate: 1e6}
			}
			firstDone := make(chan struct{})
			st, err := Run(context.Background(), cfg, func(ctx context.Context, w *Worker) error {
				switch {
				case w.Seq == 0:
					defer close(firstDone)
					return errors.New("A first of class A")
				case w.Seq%2 == 0:
					// Later errors of class A, from every worker, end
					// well after the first one.
					<-firstDone
					time.Sleep(20 * time.Millisecond)
					return fmt.Errorf("A later %d", w.Seq)
				case w.Seq%7 == 0:
					return fmt.Errorf("B %d", w.Seq)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(st.ErrorSamples) != 2 || len(st.Errors) != 2 {
				t.Fatalf("errors %v, samples %v", st.Errors, st.ErrorSamples)
			}
			if got := st.ErrorSamples["A"]; got != "A first of class A" {
				t.Errorf("sample of A = %q, want the first one", got)
			}
			if got := st.ErrorSamples["B"]; !strings.HasPrefix(got, "B ") {
				t.Errorf("sample of B = %q", got)
			}
		})
	}
}

func TestErrorSamplesSkipWarmup(t *testing.T) {
	st, err := Run(context.Background(), Config{Concurrency: 1, Duration: 150 * time.Millisecond, Warmup: 100 * time.Millisecond},
		func(ctx context.Context, w *Worker) error {
			time.Sleep(time.Millisecond)
			if !w.Measuring() {
				return errors.New("ERR during warm-up")
			}
			return errors.New("ERR measured")
		})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.ErrorSamples[impl.ClassRedis]; got != "ERR measured" {
		t.Fatalf("sample = %q, want the first measured error", got)
	}
}

func TestSampleText(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"plain", errors.New("something odd"), "something odd"},
		{"reply wrapped", fmt.Errorf("rueidis order create: %w", errors.New("OOM command not allowed when used memory > 'maxmemory'.")),
			"OOM command not allowed when used memory > 'maxmemory'."},
		{"go-redis reply", fmt.Errorf("x: %w", fakeRedisReply("WRONGTYPE Operation against a key holding the wrong kind of value")),
			"WRONGTYPE Operation against a key holding the wrong kind of value"},
		{"first line", errors.New("ERR line one\nline two"), "ERR line one"},
		{"control characters", errors.New("bad\tthing\x00here"), "bad thing here"},
		{"credentials", errors.New("dial redis://user:s3cret@db.example:6379/0: refused; also rediss://:pw@h:1"),
			"dial redis://xxxxx@db.example:6379/0: refused; also rediss://xxxxx@h:1"},
		{"no credentials kept", errors.New("dial redis://db.example:6379: refused"), "dial redis://db.example:6379: refused"},
		{"bounded", errors.New(long), strings.Repeat("é", 98) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SampleText(tc.err)
			if got != tc.want {
				t.Errorf("SampleText = %q, want %q", got, tc.want)
			}
			if len(got) > ErrorSampleMax || !utf8.ValidString(got) {
				t.Errorf("SampleText = %q: %d bytes, valid UTF-8 %v", got, len(got), utf8.ValidString(got))
			}
			if strings.Contains(got, "s3cret") || strings.Contains(got, ":pw@") {
				t.Errorf("SampleText leaks a password: %q", got)
			}
		})
	}
}

func TestNoteDoesNotAllocateForAKnownClass(t *testing.T) {
	var s errorSamples
	err := errors.New("ERR boom")
	s.note(impl.ClassRedis, err, time.Millisecond)
	allocs := testing.AllocsPerRun(1000, func() { s.note(impl.ClassRedis, err, 2*time.Millisecond) })
	if allocs != 0 {
		t.Fatalf("note allocates %.1f times for a class it has", allocs)
	}
	if s[impl.ClassRedis].at != time.Millisecond {
		t.Fatalf("note replaced the first sample: %+v", s)
	}
}

func TestFillCopiesErrorSamples(t *testing.T) {
	st := &Stats{
		Errors:       map[string]int64{impl.ClassNoPerm: 3},
		ErrorSamples: map[string]string{impl.ClassNoPerm: "NOPERM no"},
		Corrected:    NewHistogram(),
		Uncorrected:  NewHistogram(),
	}
	var c result.Cell
	st.Fill(&c)
	if c.ErrorSamples[impl.ClassNoPerm] != "NOPERM no" || c.Errors[impl.ClassNoPerm] != 3 {
		t.Fatalf("cell errors %v, samples %v", c.Errors, c.ErrorSamples)
	}
	st.ErrorSamples[impl.ClassNoPerm] = "changed"
	if c.ErrorSamples[impl.ClassNoPerm] != "NOPERM no" {
		t.Fatalf("Fill shares the map with Stats")
	}
	var empty result.Cell
	(&Stats{Corrected: NewHistogram(), Uncorrected: NewHistogram()}).Fill(&empty)
	if empty.ErrorSamples != nil {
		t.Fatalf("a run without errors has samples %v", empty.ErrorSamples)
	}
}
