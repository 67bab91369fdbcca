package impl_test

import (
	"errors"
	"testing"
	"time"

	"github.com/paybench/paybench/impl"
)

func TestParseRetries(t *testing.T) {
	for _, tc := range []struct {
		in      string
		set     bool
		library bool
		count   int
		str     string
		wantErr bool
	}{
		{in: "", str: ""},
		{in: "0", set: true, str: "0"},
		{in: "000", set: true, str: "0"},
		{in: "library", set: true, library: true, str: "library"},
		{in: "1", set: true, count: 1, str: "1"},
		{in: "3", set: true, count: 3, str: "3"},
		{in: "007", set: true, count: 7, str: "7"},
		{in: "1000", set: true, count: impl.MaxRetries, str: "1000"},
		{in: "1001", wantErr: true},
		{in: "99999999999999999999999", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "+1", wantErr: true},
		{in: " 1", wantErr: true},
		{in: "1 ", wantErr: true},
		{in: "Library", wantErr: true},
		{in: "default", wantErr: true},
		{in: "1.5", wantErr: true},
		{in: "0x3", wantErr: true},
		{in: "３", wantErr: true}, // a full-width digit
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := impl.ParseRetries(tc.in)
			if tc.wantErr {
				if err == nil || !errors.Is(err, impl.ErrInvalidConnConfig) {
					t.Fatalf("ParseRetries(%q) = %v, %v; want an error wrapping ErrInvalidConnConfig", tc.in, r, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRetries(%q): %v", tc.in, err)
			}
			if r.IsSet() != tc.set || r.Library() != tc.library || r.Count() != tc.count || r.String() != tc.str {
				t.Errorf("ParseRetries(%q) = set %v library %v count %d %q; want %v %v %d %q",
					tc.in, r.IsSet(), r.Library(), r.Count(), r.String(), tc.set, tc.library, tc.count, tc.str)
			}
		})
	}
	if r, _ := impl.ParseRetries("0"); r != impl.NoRetries {
		t.Errorf(`ParseRetries("0") = %#v, want NoRetries`, r)
	}
	if r, _ := impl.ParseRetries("library"); r != impl.LibraryRetries {
		t.Errorf(`ParseRetries("library") = %#v, want LibraryRetries`, r)
	}
	for _, n := range []int{-1, impl.MaxRetries + 1} {
		if _, err := impl.RetryCount(n); !errors.Is(err, impl.ErrInvalidConnConfig) {
			t.Errorf("RetryCount(%d) = %v, want an error wrapping ErrInvalidConnConfig", n, err)
		}
	}
	if r, err := impl.RetryCount(2); err != nil || r.String() != "2" {
		t.Errorf("RetryCount(2) = %v, %v", r, err)
	}
}

func TestRetrySetting(t *testing.T) {
	const url = "redis://127.0.0.1:6379/0"
	for _, tc := range []struct {
		name, retries, url string
		want, from         string
		wantErr            bool
	}{
		{name: "default", url: url, want: "0", from: impl.RetriesFromDefault},
		{name: "config 0", retries: "0", url: url, want: "0", from: impl.RetriesFromConfig},
		{name: "config library", retries: "library", url: url, want: "library", from: impl.RetriesFromConfig},
		{name: "config N", retries: "2", url: url, want: "2", from: impl.RetriesFromConfig},
		{name: "URL N", url: url + "?max_retries=5", want: "5", from: impl.RetriesFromURL},
		{name: "URL 0", url: url + "?max_retries=0", want: "0", from: impl.RetriesFromURL},
		{name: "URL -1", url: url + "?max_retries=-1", want: "0", from: impl.RetriesFromURL},
		{name: "URL last value", url: url + "?max_retries=1&max_retries=4", want: "4", from: impl.RetriesFromURL},
		{name: "URL blank", url: url + "?max_retries=", want: "0", from: impl.RetriesFromDefault},
		{name: "config wins over URL", retries: "0", url: url + "?max_retries=5", want: "0", from: impl.RetriesFromConfig},
		{name: "library wins over URL", retries: "library", url: url + "?max_retries=5", want: "library", from: impl.RetriesFromConfig},
		{name: "N wins over URL", retries: "1", url: url + "?max_retries=5", want: "1", from: impl.RetriesFromConfig},
		{name: "bad config", retries: "x", url: url, wantErr: true},
		{name: "bad URL value", url: url + "?max_retries=x", wantErr: true},
		{name: "URL -2", url: url + "?max_retries=-2", wantErr: true},
		{name: "URL too many", url: url + "?max_retries=1001", wantErr: true},
		{name: "bad config beats a good URL", retries: "-1", url: url + "?max_retries=2", wantErr: true},
		{name: "config hides a bad URL value", retries: "2", url: url + "?max_retries=x", want: "2", from: impl.RetriesFromConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := impl.ConnConfig{URL: tc.url, Retries: tc.retries}
			r, from, err := cfg.RetrySetting()
			if tc.wantErr {
				if !errors.Is(err, impl.ErrInvalidConnConfig) {
					t.Fatalf("RetrySetting() = %v, %q, %v; want an error wrapping ErrInvalidConnConfig", r, from, err)
				}
				if err := cfg.Validate(); !errors.Is(err, impl.ErrInvalidConnConfig) {
					t.Errorf("Validate() = %v, want an error wrapping ErrInvalidConnConfig", err)
				}
				return
			}
			if err != nil || r.String() != tc.want || from != tc.from || !r.IsSet() {
				t.Errorf("RetrySetting() = %q, %q, %v; want %q, %q", r, from, err, tc.want, tc.from)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestValidateTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name       string
		read, dial time.Duration
		ok         bool
	}{
		{name: "defaults", ok: true},
		{name: "set", read: 200 * time.Millisecond, dial: time.Second, ok: true},
		{name: "negative read", read: -1, ok: false},
		{name: "negative dial", dial: -time.Second, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := impl.ConnConfig{URL: "redis://h", ReadTimeout: tc.read, DialTimeout: tc.dial}.Validate()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, impl.ErrInvalidConnConfig)) {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
