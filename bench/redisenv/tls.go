package redisenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrBadTLS is a usage error: TLS settings that cannot be used (a file
// that cannot be read or holds no certificate, a certificate without its
// key), or TLS settings for a server that is not a rediss:// URL.
var ErrBadTLS = errors.New("bad TLS settings")

// TLSFiles are TLS settings as the command line gives them (--tls-ca,
// --tls-cert, --tls-key, --tls-server-name, --tls-insecure). The zero
// value is no setting.
type TLSFiles struct {
	// CA is a PEM file of the certificates that may sign the server's (in
	// place of the system's roots).
	CA string
	// Cert and Key are PEM files of a client certificate and its key, for
	// a server that asks for one (tls-auth-clients); both or neither.
	Cert, Key string
	// ServerName is the name the server's certificate must carry (default:
	// the URL's host).
	ServerName string
	// Insecure accepts any server certificate: no verification at all.
	Insecure bool
}

// IsZero reports whether no setting is given.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

// Config reads the files and returns the client TLS configuration, nil
// when no setting is given. Errors wrap ErrBadTLS and name the file.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f.IsZero() {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: f.ServerName, InsecureSkipVerify: f.Insecure, MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %w", ErrBadTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrBadTLS, f.CA)
		}
		cfg.RootCAs = pool
	}
	switch {
	case f.Cert != "" && f.Key != "":
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s and key %s: %s", ErrBadTLS, f.Cert, f.Key, oneLine(err.Error()))
		}
		cfg.Certificates = []tls.Certificate{pair}
	case f.Cert != "" || f.Key != "":
		return nil, fmt.Errorf("%w: a client certificate needs both its certificate and its key file", ErrBadTLS)
	}
	return cfg, nil
}
