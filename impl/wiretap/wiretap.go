// Package wiretap wraps a client library's connections to a Redis Cluster
// node: it counts the MOVED and ASK redirections the node answered (read
// from the RESP stream itself, so that the count does not depend on what a
// library chooses to report), and it can make a connection's failures
// final, so that a library that would re-send a command after a lost
// connection surfaces the failure instead.
//
// Both client libraries follow MOVED and ASK inside their cluster clients,
// below any hook a user can install on a command; the connection is the
// one place both can be observed alike.
package wiretap

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
)

// Counter counts the redirections a backend's connections received. It is
// safe for concurrent use; the zero value is ready.
type Counter struct {
	moved atomic.Int64
	ask   atomic.Int64
}

// Counts is a Counter's reading.
type Counts struct {
	// Moved counts MOVED error replies received.
	Moved int64
	// Ask counts ASK error replies received.
	Ask int64
}

// Sub returns c - o, field by field.
func (c Counts) Sub(o Counts) Counts { return Counts{Moved: c.Moved - o.Moved, Ask: c.Ask - o.Ask} }

// Read returns the counts so far (zero for a nil Counter).
func (c *Counter) Read() Counts {
	if c == nil {
		return Counts{}
	}
	return Counts{Moved: c.moved.Load(), Ask: c.ask.Load()}
}

// ConnError is a connection's read or write failure made final: it
// carries the failure's text, but no library's error test (errors.Is
// io.EOF, net.Error's Timeout) sees through it, so a library that
// re-sends commands after network errors does not re-send this one.
// Reveal returns the failure itself, for classifying it.
type ConnError struct {
	// Op is "read" or "write".
	Op  string
	err error
}

// Error returns the failure's own text.
func (e *ConnError) Error() string { return e.err.Error() }

// Cause returns the failure the connection met.
func (e *ConnError) Cause() error { return e.err }

// Reveal returns the failure a ConnError anywhere in err's tree hides
// (errors.As: joined errors included), or err itself when there is none.
func Reveal(err error) error {
	var ce *ConnError
	if errors.As(err, &ce) {
		return ce.err
	}
	return err
}

// Options say what a wrapped connection does.
type Options struct {
	// Counter receives the redirections read (nil: none counted).
	Counter *Counter
	// Final turns read and write failures into *ConnError.
	Final bool
}

// Wrap returns c wrapped as o says. A connection that exposes its file
// descriptor (syscall.Conn) still does, so that a library's liveness
// check of an idle connection keeps working.
func Wrap(c net.Conn, o Options) net.Conn {
	if o.Counter == nil && !o.Final {
		return c
	}
	w := &conn{Conn: c, o: o}
	if sc, ok := c.(syscall.Conn); ok {
		return &sysConn{conn: w, sc: sc}
	}
	return w
}

// conn is a wrapped connection.
type conn struct {
	net.Conn
	o Options
	s scanner // only the reading goroutine touches it
}

// Read reads from the connection and scans what it read for redirections.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.o.Counter != nil {
		moved, ask := c.s.scan(p[:n])
		if moved > 0 {
			c.o.Counter.moved.Add(moved)
		}
		if ask > 0 {
			c.o.Counter.ask.Add(ask)
		}
	}
	if err != nil && c.o.Final {
		err = &ConnError{Op: "read", err: err}
	}
	return n, err
}

// Write writes to the connection.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.o.Final {
		err = &ConnError{Op: "write", err: err}
	}
	return n, err
}

// sysConn is a wrapped connection that exposes its descriptor.
type sysConn struct {
	*conn
	sc syscall.Conn
}

// SyscallConn returns the wrapped connection's raw connection.
func (c *sysConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }
