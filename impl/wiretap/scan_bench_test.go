package wiretap

import (
	"strings"
	"testing"
)

// BenchmarkScan measures what the wiretap adds to each read of a cluster
// connection: the scan of the bytes read, for the replies paybench's
// operations get (small integers and status lines, a script's array, a
// cached value's bulk string). ns/op is per reply; compare it with a round
// trip (tens of microseconds on loopback).
func BenchmarkScan(b *testing.B) {
	for _, bc := range []struct {
		name  string
		reply string
	}{
		{"integer", ":95\r\n"},
		{"status", "+OK\r\n"},
		{"script-array", "*3\r\n:1\r\n:95\r\n$9\r\nsku-1:4cb\r\n"},
		{"bulk-1KiB", "$1024\r\n" + strings.Repeat("x", 1024) + "\r\n"},
		{"moved", "-MOVED 3999 127.0.0.1:7001\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// 64 replies per read, as a pipelined batch arrives.
			batch := []byte(strings.Repeat(bc.reply, 64))
			b.SetBytes(int64(len(bc.reply)))
			var s scanner
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += 64 {
				s.scan(batch)
			}
		})
	}
}
