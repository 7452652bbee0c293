package custodian

import (
	"anom/internal/fsutil"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Endpoint is where a custodian listens and how the archive authenticates
// it: by the SHA-256 of its certificate (Pin) or, if Pin is zero, by a CA
// pool (the network CA).
type Endpoint struct {
	URL     string // https://host:port
	Pin     [32]byte
	RootCAs *x509.CertPool
}

// String is the endpoint in ParseEndpoint's form.
func (e Endpoint) String() string {
	if e.Pin == ([32]byte{}) {
		return e.URL
	}
	return e.URL + "#" + hex.EncodeToString(e.Pin[:])
}

// ParseEndpoint parses "https://host:port#PIN", PIN being the hex SHA-256
// of the custodian's certificate (as printed by the custodian at start).
// Without "#PIN" the endpoint must be given a RootCAs pool.
func ParseEndpoint(s string) (Endpoint, error) {
	base, pin, hasPin := strings.Cut(s, "#")
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return Endpoint{}, fmt.Errorf("parsing custodian endpoint %q: %w: want https://host:port#PIN", s, ErrMalformed)
	}
	ep := Endpoint{URL: "https://" + u.Host}
	if hasPin {
		b, err := hex.DecodeString(pin)
		if err != nil || len(b) != 32 {
			return Endpoint{}, fmt.Errorf("parsing custodian endpoint %q: %w: pin must be 64 hex digits", s, ErrMalformed)
		}
		copy(ep.Pin[:], b)
	}
	return ep, nil
}

// TLSConfig is the client configuration that trusts only this endpoint
// and presents the archive's client certificate.
func (e Endpoint) TLSConfig(client tls.Certificate) (*tls.Config, error) {
	if len(client.Certificate) == 0 {
		return nil, fmt.Errorf("custodian endpoint %s: %w: no client certificate (custodians refuse anonymous requests)", e.URL, ErrUnauthenticated)
	}
	if e.Pin == ([32]byte{}) {
		if e.RootCAs == nil {
			return nil, fmt.Errorf("custodian endpoint %s: %w: neither a pin nor a CA pool", e.URL, ErrMalformed)
		}
		return &tls.Config{RootCAs: e.RootCAs, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{client}}, nil
	}
	pin := e.Pin
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{client},
		// The certificate is self-signed: chain and name checks are
		// replaced by the pin, checked in VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("custodian presented no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], pin[:]) != 1 {
				return fmt.Errorf("custodian certificate %x does not match the pin %x", got, pin)
			}
			return nil
		},
	}, nil
}

// Pin is the SHA-256 of a certificate's DER encoding.
func Pin(cert tls.Certificate) [32]byte { return sha256.Sum256(cert.Certificate[0]) }

// ParsePin parses a pin as printed: 64 hex digits.
func ParsePin(s string) ([32]byte, error) {
	var pin [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(pin) {
		return pin, fmt.Errorf("parsing pin %q: %w: want 64 hex digits", s, ErrMalformed)
	}
	copy(pin[:], b)
	return pin, nil
}

// Certificate file names in a custodian's data directory, and of the
// archive's client certificate in the archive's.
const (
	CertFile       = "tls.crt"
	KeyFile        = "tls.key"
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"
)

// The archive authenticates itself to the custodians with mutual TLS: it
// presents a self-signed client certificate (LoadOrCreateClientCertificate)
// whose SHA-256 pin each custodian is configured with (Config.ArchivePins).
// A connection without a pinned certificate fails in the TLS handshake,
// before any HTTP request is read.

// ErrUnauthenticated: a request did not come from a pinned archive.
var ErrUnauthenticated = errors.New("custodian: client certificate missing or not pinned")

// CodeUnauthenticated is the refusal code of ErrUnauthenticated.
const CodeUnauthenticated Code = "unauthenticated"

// pinned says whether a certificate's DER matches one of pins.
func pinned(der []byte, pins [][32]byte) bool {
	got := sha256.Sum256(der)
	ok := 0
	for _, p := range pins {
		ok |= subtle.ConstantTimeCompare(got[:], p[:])
	}
	return ok == 1
}

// LoadOrCreateCertificate loads the TLS certificate kept in dir, or makes a
// self-signed ECDSA P-256 one valid for ten years (for "localhost", the
// loopback addresses and hosts) and keeps it there (key 0600).
func LoadOrCreateCertificate(dir string, hosts []string, now time.Time) (tls.Certificate, error) {
	return loadOrCreate(dir, CertFile, KeyFile, "anom custodian", x509.ExtKeyUsageServerAuth, hosts, now)
}

// LoadOrCreateClientCertificate loads the archive's client certificate
// kept in dir (ClientCertFile, ClientKeyFile), or makes a self-signed
// ECDSA P-256 one valid for ten years and keeps it there (key 0600). Its
// Pin is what the custodians are given (anom custodian --archive-pin).
func LoadOrCreateClientCertificate(dir string, now time.Time) (tls.Certificate, error) {
	return loadOrCreate(dir, ClientCertFile, ClientKeyFile, "anom archive", x509.ExtKeyUsageClientAuth, nil, now)
}

func loadOrCreate(dir, certFile, keyFile, name string, usage x509.ExtKeyUsage, hosts []string, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		return cert, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("loading TLS certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("making TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("making TLS certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("making TLS certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("making TLS certificate: %w", err)
	}
	if err := fsutil.WriteNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := fsutil.WriteNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}
