package redisenv

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestExp(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	start := time.Now()
	_, err := Provide(context.Background(), Options{URL: "redis://" + l.Addr().String(), DialTimeout: time.Second})
	t.Logf("echo: %v %v class=%v", time.Since(start), err, classify(err))
	_, err = Provide(context.Background(), Options{URL: "redis://127.0.0.1:1", DialTimeout: time.Second})
	t.Logf("refused: %v class=%v", err, classify(err))
	_, err = Provide(context.Background(), Options{URL: "redis://nosuchhost.invalid:6379", DialTimeout: time.Second})
	t.Logf("dns: %v class=%v", err, classify(err))
	_, err = Provide(context.Background(), Options{URL: "unix:///tmp/nosuch.sock", DialTimeout: time.Second})
	t.Logf("unix: %v class=%v", err, classify(err))
	s, err := spawn(context.Background(), Options{DialTimeout: time.Second}.withDefaults(), "sekrit")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("spawned %v pid %d", s, s.PID())
	_, err = Provide(context.Background(), Options{URL: s.URL, Password: "wrong", DialTimeout: time.Second})
	t.Logf("wrong: %v class=%v", err, classify(err))
	_, err = Provide(context.Background(), Options{URL: Redact(s.URL)[:0] + "redis://" + s.admin.Options().Addr, DialTimeout: time.Second})
	t.Logf("nopass: %v class=%v", err, classify(err))
	e, err := Provide(context.Background(), Options{Force: KindEmbedded})
	t.Logf("embedded: %v %v", e, err)
	start = time.Now()
	_, err = Provide(context.Background(), Options{Force: KindContainer})
	t.Logf("container: %v %v", time.Since(start), err)
}
