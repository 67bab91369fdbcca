package wiretap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
)

func TestScannerCountsRedirections(t *testing.T) {
	tests := []struct {
		name       string
		stream     string
		moved, ask int64
	}{
		{"moved", "-MOVED 3999 127.0.0.1:7001\r\n", 1, 0},
		{"ask", "-ASK 3999 127.0.0.1:7001\r\n", 0, 1},
		{"other errors", "-ERR no\r\n-TRYAGAIN x\r\n-MOVEDX\r\n-ASKING\r\n", 0, 0},
		{"a bulk holding the words", "$26\r\n-MOVED 3999 127.0.0.1:7001\r\n-ASK 1 a:1\r\n", 0, 1},
		{"a null bulk, then moved", "$-1\r\n-MOVED 1 a:1\r\n", 1, 0},
		{"simple replies", "+OK\r\n:12\r\n_\r\n#t\r\n,1.5\r\n(123\r\n", 0, 0},
		{"inside a transaction's replies", "+OK\r\n-ASK 5 a:1\r\n+QUEUED\r\n*2\r\n-MOVED 5 b:2\r\n$3\r\nfoo\r\n", 1, 1},
		{"verbatim and maps", "=15\r\ntxt:-MOVED 1 a:\r\n%1\r\n+k\r\n-MOVED 1 a:1\r\n", 1, 0},
		{"empty bulk", "$0\r\n\r\n-ASK 1 a:1\r\n", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every split of the stream into two reads counts the same.
			for cut := 0; cut <= len(tt.stream); cut++ {
				var s scanner
				m1, a1 := s.scan([]byte(tt.stream[:cut]))
				m2, a2 := s.scan([]byte(tt.stream[cut:]))
				if m1+m2 != tt.moved || a1+a2 != tt.ask {
					t.Fatalf("cut at %d: moved %d ask %d, want %d and %d", cut, m1+m2, a1+a2, tt.moved, tt.ask)
				}
				if s.state != atType {
					t.Fatalf("cut at %d: the scanner ended mid-reply (state %d)", cut, s.state)
				}
			}
			// Byte by byte too.
			var s scanner
			var moved, ask int64
			for i := range len(tt.stream) {
				m, a := s.scan([]byte{tt.stream[i]})
				moved, ask = moved+m, ask+a
			}
			if moved != tt.moved || ask != tt.ask {
				t.Fatalf("byte by byte: moved %d ask %d, want %d and %d", moved, ask, tt.moved, tt.ask)
			}
		})
	}
}

func TestWrapCountsAndMakesFailuresFinal(t *testing.T) {
	server, client := net.Pipe()
	var ctr Counter
	c := Wrap(client, Options{Counter: &ctr, Final: true})
	go func() {
		_, _ = server.Write([]byte("-MOVED 1 a:1\r\n-ASK 2 b:2\r\n"))
		_ = server.Close()
	}()
	b, err := io.ReadAll(c)
	if len(b) == 0 {
		t.Fatalf("read nothing: %v", err)
	}
	if got := ctr.Read(); got != (Counts{Moved: 1, Ask: 1}) {
		t.Fatalf("counts %+v, want 1 moved and 1 ask", got)
	}
	// io.ReadAll swallows io.EOF; read again to see the failure.
	_, err = c.Read(make([]byte, 1))
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("read after close: %v (%T), want a *ConnError", err, err)
	}
	if errors.Is(err, io.EOF) {
		t.Fatal("a final failure must not be io.EOF to errors.Is (a library would re-send)")
	}
	if wrapped := fmt.Errorf("pool: %w", err); !errors.Is(Reveal(wrapped), io.EOF) {
		t.Fatalf("Reveal(%v) does not give io.EOF back", wrapped)
	}
	// A joined error (a release over several shards) is searched too.
	if joined := fmt.Errorf("release: %w", errors.Join(errors.New("shard 1: refused"), err)); !errors.Is(Reveal(joined), io.EOF) {
		t.Fatalf("Reveal(%v) does not give io.EOF back", joined)
	}
	if Reveal(os.ErrClosed) != os.ErrClosed {
		t.Fatal("Reveal changed an error without a ConnError")
	}
}

func TestWrapKeepsTheDescriptor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback listener: %v", err)
	}
	defer ln.Close()
	tcp, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	w := Wrap(tcp, Options{Counter: &Counter{}})
	if _, ok := w.(*sysConn); !ok {
		t.Fatalf("a TCP connection wrapped as %T, want it to keep SyscallConn", w)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if _, ok := Wrap(p1, Options{Final: true}).(*sysConn); ok {
		t.Fatal("a pipe has no descriptor, its wrapper must not claim one")
	}
	if Wrap(p1, Options{}) != p1 {
		t.Fatal("a wrapper that does nothing should not wrap")
	}
}
