package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/paybench/paybench/bench/redisenv"
)

// ErrNeedsTCP says a URL names a unix socket: the proxy forwards TCP only.
var ErrNeedsTCP = errors.New("the proxy needs TCP (a redis:// or rediss:// URL), not a unix socket")

// RewriteURL returns rawURL, a redis:// or rediss:// URL, with its
// host:port replaced by addr (say a Proxy's Addr), keeping the scheme,
// user, password, database and query. A unix:// URL is refused with
// ErrNeedsTCP; any other bad URL with redisenv.ErrBadURL. Errors never
// contain the password.
//
// A rediss:// URL stays rediss://: the proxy forwards the TLS bytes as
// they are. Client libraries then check the server's certificate against
// addr's host (go-redis and rueidis take the TLS server name from the
// URL), so the caller sets the server name to the original host, or the
// certificate must name 127.0.0.1.
func RewriteURL(rawURL, addr string) (string, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return "", fmt.Errorf("proxy: address %q: want host:port", addr)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error carries the URL, and so the password: not wrapped.
		return "", fmt.Errorf("proxy: rewrite %s: %w: does not parse", redisenv.Redact(rawURL), redisenv.ErrBadURL)
	}
	switch {
	case u.Scheme == "unix":
		return "", fmt.Errorf("proxy: rewrite %s: %w", redisenv.Redact(rawURL), ErrNeedsTCP)
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return "", fmt.Errorf("proxy: rewrite %s: %w: scheme must be redis:// or rediss://", redisenv.Redact(rawURL), redisenv.ErrBadURL)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("proxy: rewrite %s: %w: want %s://host:port...", redisenv.Redact(rawURL), redisenv.ErrBadURL, u.Scheme)
	}
	u.Host = addr
	return u.String(), nil
}
