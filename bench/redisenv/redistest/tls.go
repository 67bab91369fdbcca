package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/paybench/paybench/bench/redisenv"
)

// TLSServerName is the DNS name in the certificate of a SpawnTLS server,
// besides its address 127.0.0.1.
const TLSServerName = "redis.paybench.test"

// TLSServer is a redis-server of the test's own that speaks TLS on one
// port and plain text on another, with certificates made for the test.
type TLSServer struct {
	// Plain is the server on its plain-text port (its admin client
	// verifies the test's keys and state).
	Plain *redisenv.Server
	// URL is the rediss:// URL of its TLS port, on 127.0.0.1.
	URL string
	// CA is the PEM file of the certificate authority that signed the
	// server's and the client's certificates.
	CA string
	// Cert and Key are the PEM files of a client certificate signed by CA
	// and its key.
	Cert, Key string
	// OtherCA is the PEM file of a certificate authority that signed
	// nothing here: the server's certificate does not verify with it.
	OtherCA string
}

// SpawnTLS starts a redis-server with a TLS port (--tls-port) as well as
// its plain one. Its certificate is signed by a CA made for the test and
// names 127.0.0.1 and TLSServerName. With clientAuth the server requires
// a client certificate (tls-auth-clients yes). It is stopped when the
// test ends, and skipped as Spawn is.
func SpawnTLS(t testing.TB, clientAuth bool) *TLSServer {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newCA(t, "paybench test CA")
	other, _ := newCA(t, "another CA")
	srvCert, srvKey := issue(t, ca, caKey, "redis", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := issue(t, ca, caKey, "paybench client", x509.ExtKeyUsageClientAuth)
	s := &TLSServer{
		CA:      writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw),
		OtherCA: writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw),
		Cert:    writePEM(t, dir, "client.pem", "CERTIFICATE", cliCert),
		Key:     writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", cliKey),
	}
	srvCertFile := writePEM(t, dir, "server.pem", "CERTIFICATE", srvCert)
	srvKeyFile := writePEM(t, dir, "server-key.pem", "EC PRIVATE KEY", srvKey)
	auth := "no"
	if clientAuth {
		auth = "yes"
	}
	port := freePort(t)
	s.Plain = Spawn(t, "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", srvCertFile, "--tls-key-file", srvKeyFile,
		"--tls-ca-cert-file", s.CA, "--tls-auth-clients", auth)
	s.URL = "rediss://127.0.0.1:" + strconv.Itoa(port)
	return s
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newCA returns a self-signed CA certificate and its key.
func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// issue returns a certificate for 127.0.0.1 and TLSServerName signed by
// ca, for usage, and its key, both DER.
func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) (cert, key []byte) {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{TLSServerName},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der, keyDER
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writePEM writes one PEM block to dir/name and returns the path.
func writePEM(t testing.TB, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
