package impl

import (
	"crypto/tls"
	"errors"
	"net"
)

// ErrTLSNeedsRediss is returned when TLS settings are given for an
// address that does not ask for TLS (redis:// or unix://, not rediss://).
var ErrTLSNeedsRediss = errors.New("TLS settings need a rediss:// URL")

// MergeTLS returns the TLS configuration of a connection to addr (host:port)
// whose URL implied urlTLS (nil for a redis:// or unix:// URL) when the
// caller also gave cfg (ConnConfig.TLS; nil: none). Without cfg it returns
// urlTLS. With cfg it returns a copy of cfg that keeps what the URL says
// cfg does not: the server name (the URL's host, as the libraries set it,
// when cfg names none) and skip_verify; and it refuses cfg for a URL that
// does not ask for TLS (ErrTLSNeedsRediss), since paybench never turns a
// redis:// address into a TLS one behind the user's back.
func MergeTLS(addr string, urlTLS, cfg *tls.Config) (*tls.Config, error) {
	if cfg == nil {
		return urlTLS, nil
	}
	if urlTLS == nil {
		return nil, ErrTLSNeedsRediss
	}
	out := cfg.Clone()
	out.InsecureSkipVerify = out.InsecureSkipVerify || urlTLS.InsecureSkipVerify
	if out.ServerName == "" {
		out.ServerName = urlTLS.ServerName
	}
	if out.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			out.ServerName = host
		}
	}
	if out.MinVersion == 0 {
		out.MinVersion = max(urlTLS.MinVersion, tls.VersionTLS12)
	}
	return out, nil
}

// SettingTLS is the key of Backend.Settings that says whether the
// backend's connections use TLS: TLSSetting's value.
const SettingTLS = "tls"

// TLSSetting describes a TLS configuration for a backend's Settings
// (SettingTLS): "off", "on", "on (no verification)", with " + client
// certificate" when one is presented.
func TLSSetting(c *tls.Config) string {
	if c == nil {
		return "off"
	}
	s := "on"
	if c.InsecureSkipVerify {
		s += " (no verification)"
	}
	if len(c.Certificates) > 0 || c.GetClientCertificate != nil {
		s += " + client certificate"
	}
	return s
}
