package goredis

import (
	"maps"
	"testing"
)

// TestURLParams: a parameter counts as set when its last value is not
// blank (go-redis reads a blank value as its own default).
func TestURLParams(t *testing.T) {
	got, err := urlParams("redis://h:1/0?read_timeout=1s&dial_timeout=&max_retries=2&max_retries=")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"read_timeout": true, "dial_timeout": false, "max_retries": false}
	if !maps.Equal(got, want) {
		t.Errorf("urlParams = %v, want %v", got, want)
	}
	if _, err := urlParams("redis://h:1/%zz"); err == nil {
		t.Errorf("urlParams of a bad URL: no error")
	}
}
