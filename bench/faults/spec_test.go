package faults

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		err  string
	}{
		{in: "pause:1s@2s", want: Spec{Kind: Pause, Arg: time.Second, At: 2 * time.Second}},
		{in: "kill-conns@500ms", want: Spec{Kind: KillConns, At: 500 * time.Millisecond}},
		{in: "kill-conns@500ms/300ms", want: Spec{Kind: KillConns, At: 500 * time.Millisecond, Every: 300 * time.Millisecond}},
		{in: "restart@1s", want: Spec{Kind: Restart, At: time.Second}},
		{in: "oom@1s", want: Spec{Kind: OOM, At: time.Second}},
		{in: "oom@1s+2s", want: Spec{Kind: OOM, At: time.Second, For: 2 * time.Second}},
		{in: "latency:5ms@0s+1s", want: Spec{Kind: Latency, Arg: 5 * time.Millisecond, For: time.Second}},
		{in: "reset@100ms/1s", want: Spec{Kind: Reset, At: 100 * time.Millisecond, Every: time.Second}},
		{in: " pause:1s@0s ", want: Spec{Kind: Pause, Arg: time.Second}},
		{in: "pause@1s", err: "needs a duration"},
		{in: "pause:0s@1s", err: "positive duration"},
		{in: "pause:1s", err: "no @AT"},
		{in: "pause:1s@-1s", err: "AT must be"},
		{in: "pause:1s@1s+1s", err: "takes no +DUR"},
		{in: "restart@1s/1s", err: "does not repeat"},
		{in: "kill-conns:1s@1s", err: "takes no :ARG"},
		{in: "kill-conns@1s/1ms", err: "flood"},
		{in: "oom@1s/1s", err: "does not repeat"},
		{in: "meteor@1s", err: "unknown kind"},
		{in: "latency:1s@1s+", err: "positive duration"},
		{in: "latency:48h@1s", err: "positive duration"},
		{in: "", err: "no @AT"},
		{in: "reshard@2s", want: Spec{Kind: Reshard, At: 2 * time.Second}},
		{in: "failover@1s", want: Spec{Kind: Failover, At: time.Second}},
		{in: "failover:force@1s", want: Spec{Kind: Failover, At: time.Second, Mode: ForceMode}},
		{in: "failover:now@1s", err: "takes no argument but"},
		{in: "reshard:1s@1s", err: "takes no :ARG"},
		{in: "reshard@1s/1s", err: "does not repeat"},
		{in: "failover@1s+1s", err: "takes no +DUR"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			// The spec prints in the grammar and parses back the same.
			again, err := Parse(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip %q → %q → %+v, %v", tc.in, got.String(), again, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"pause:1s@2s", "kill-conns@500ms/300ms", "restart@1s", "oom@1s+2s", "latency:5ms@0s+1s", "reset@100ms/1s", "reshard@2s", "failover:force@1s", "x@", "@@", "pause:1s@1s/+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("a multi-line error: %q", err)
			}
			return
		}
		// A parsed spec is well formed and survives its own printing.
		switch {
		case s.At < 0, s.Arg < 0, s.For < 0, s.Every < 0 && s.Every != 0:
			t.Fatalf("negative times in %+v", s)
		case (s.Kind == Pause || s.Kind == Latency) != (s.Arg > 0):
			t.Fatalf("argument of %+v", s)
		case s.Every > 0 && s.Every < minEvery:
			t.Fatalf("a flood: %+v", s)
		}
		again, err := Parse(s.String())
		if err != nil || again != s {
			t.Fatalf("%q → %q → %+v, %v", in, s.String(), again, err)
		}
	})
}

func TestCheckCluster(t *testing.T) {
	parse := func(s string) []Spec {
		sp, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return []Spec{sp}
	}
	for _, tc := range []struct {
		spec    string
		cluster bool
		err     string
	}{
		{"reshard@1s", true, ""},
		{"failover@1s", true, ""},
		{"failover:force@1s", true, ""},
		{"pause:1s@1s", true, "not supported on a Redis Cluster"},
		{"kill-conns@1s", true, "not supported on a Redis Cluster"},
		{"reshard@1s", false, "needs a Redis Cluster"},
		{"failover@1s", false, "needs a Redis Cluster"},
		{"pause:1s@1s", false, ""},
	} {
		err := CheckCluster(parse(tc.spec), tc.cluster)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("CheckCluster(%s, cluster %v) = %v, want %q", tc.spec, tc.cluster, err, tc.err)
		}
	}
}
