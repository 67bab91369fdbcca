package impltest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// replyDropper is a TCP proxy between a backend and Redis that loses the
// replies of commands on demand: once armed with a marker and a count, it
// forwards every command, but swallows the reply to the next count
// commands that mention the marker and then closes that client
// connection. The server has run the command and the client sees its
// connection lost without a reply: exactly the case in which a client's
// retry re-sends a write that already applied. It reads RESP (2 and 3)
// both ways, so it knows which reply answers which command whatever the
// pipelining; push messages are not replies. A NOSCRIPT error reply is
// forwarded and not counted, so that a script helper's EVALSHA, EVAL
// fallback reaches the server.
type replyDropper struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	marker []byte
	drops  int // replies still to swallow
	ran    int // marked commands the server answered (not NOSCRIPT)
	conns  map[net.Conn]struct{}
	closed bool
}

// newReplyDropper starts a proxy to target (host:port) on a free loopback
// port; it is closed when the test ends.
func newReplyDropper(t testing.TB, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &replyDropper{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port.
func (p *replyDropper) Addr() string { return p.ln.Addr().String() }

// Arm makes the proxy swallow the replies to the next drops commands that
// contain marker, and resets the count Ran returns.
func (p *replyDropper) Arm(marker string, drops int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.drops, p.ran = []byte(marker), drops, 0
}

// Ran returns how many commands containing the marker the server
// answered (ran) since Arm, swallowed replies included.
func (p *replyDropper) Ran() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ran
}

// Left returns how many replies are still to be swallowed.
func (p *replyDropper) Left() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drops
}

func (p *replyDropper) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// track records c for close; it reports false (and closes c) once the
// proxy is closed.
func (p *replyDropper) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *replyDropper) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			return
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve relays one client connection.
func (p *replyDropper) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(server) {
		_ = client.Close()
		return
	}
	var (
		qmu    sync.Mutex
		marked []bool // one per command forwarded and not yet answered
	)
	done := make(chan struct{})
	go func() { // client to server
		defer close(done)
		r := bufio.NewReader(client)
		for {
			cmd, err := readRESP(r, nil)
			if err != nil {
				_ = server.Close()
				return
			}
			p.mu.Lock()
			m := len(p.marker) > 0 && bytes.Contains(cmd, p.marker)
			p.mu.Unlock()
			qmu.Lock()
			marked = append(marked, m)
			qmu.Unlock()
			if _, err := server.Write(cmd); err != nil {
				_ = client.Close()
				return
			}
		}
	}()
	r := bufio.NewReader(server)
	for {
		reply, err := readRESP(r, nil)
		if err != nil {
			break
		}
		if reply[0] != '>' { // a push message answers no command
			qmu.Lock()
			m := len(marked) > 0 && marked[0]
			if len(marked) > 0 {
				marked = marked[1:]
			}
			qmu.Unlock()
			if m && !bytes.HasPrefix(reply, []byte("-NOSCRIPT")) && p.ran1() {
				break // swallowed: close both sides
			}
		}
		if _, err := client.Write(reply); err != nil {
			break
		}
	}
	_ = client.Close()
	_ = server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// ran1 counts a marked command the server answered and reports whether
// its reply is to be swallowed.
func (p *replyDropper) ran1() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ran++
	if p.drops > 0 {
		p.drops--
		return true
	}
	return false
}

// errRESP reports a byte stream that is not RESP.
var errRESP = errors.New("not RESP")

// readRESP appends one whole RESP2 or RESP3 value from r to out, as it
// was sent, and returns it. An attribute (|) is returned with the value it
// annotates.
func readRESP(r *bufio.Reader, out []byte) ([]byte, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line %q", errRESP, line)
	}
	out = append(out, line...)
	typ, body := line[0], string(line[1:len(line)-2])
	switch typ {
	case '+', '-', ':', ',', '#', '_', '(':
		return out, nil
	}
	n, err := strconv.Atoi(body)
	if err != nil {
		return nil, fmt.Errorf("%w: length %q of type %q", errRESP, body, typ)
	}
	switch typ {
	case '$', '!', '=': // blob string, blob error, verbatim string
		if n < 0 {
			return out, nil
		}
		start := len(out)
		out = append(out, make([]byte, n+2)...)
		if _, err := io.ReadFull(r, out[start:]); err != nil {
			return nil, err
		}
		return out, nil
	case '*', '~', '>', '%', '|': // array, set, push, map, attribute
		if typ == '%' || typ == '|' {
			n *= 2
		}
		for range max(n, 0) {
			if out, err = readRESP(r, out); err != nil {
				return nil, err
			}
		}
		if typ == '|' {
			return readRESP(r, out)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: type %q", errRESP, typ)
}
