package webapp

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"

	"anom/internal/tlstest"
)

// handshake connects to addr asking for sni (none when "") and returns
// the leaf certificate the server presented, checking nothing.
func handshake(t *testing.T, addr, sni string) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// TestOperatorTLS: with an operator certificate, a browser asking for its
// name gets it (and can verify it with the operator's CA); a native
// client asking for the network's name, for another name or for none (an
// IP address) gets the network's certificate, which chains to the pinned
// network CA.
func TestOperatorTLS(t *testing.T) {
	network := tlstest.New(t, "localhost", "127.0.0.1", "anom.internal")
	operator := tlstest.New(t, "chat.example.org", "localhost")
	cfg, names, err := OperatorTLS(network.Server, operator.Server.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "chat.example.org" {
		t.Errorf("served for %v, want chat.example.org alone (localhost is the network's)", names)
	}
	addr := serveTLS(t, cfg)
	isNetwork := func(leaf *x509.Certificate) bool { return leaf.CheckSignatureFrom(network.CA) == nil }
	if leaf := handshake(t, addr, "chat.example.org"); isNetwork(leaf) || leaf.CheckSignatureFrom(operator.CA) != nil {
		t.Error("SNI chat.example.org: not the operator's certificate")
	}
	for _, sni := range []string{"", "anom.internal", "localhost", "other.example.org"} {
		if leaf := handshake(t, addr, sni); !isNetwork(leaf) {
			t.Errorf("SNI %q: not the network's certificate", sni)
		}
	}
	// A browser's verification, with the operator's CA as a root.
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "chat.example.org", RootCAs: operator.Pool})
	if err != nil {
		t.Errorf("verified handshake for chat.example.org: %v", err)
	} else {
		c.Close()
	}
	// A native client's: the network CA, by IP address.
	host, _, _ := net.SplitHostPort(addr)
	c, err = tls.Dial("tcp", addr, &tls.Config{ServerName: host, RootCAs: network.Pool})
	if err != nil {
		t.Errorf("verified handshake with the network CA by IP: %v", err)
	} else {
		c.Close()
	}
	// The network's configuration is left as it was.
	if len(network.Server.Certificates) != 1 || network.Server.GetCertificate != nil {
		t.Error("OperatorTLS changed the network's configuration")
	}
}

// TestOperatorTLSRefusesSharedNames: an operator certificate whose every
// name the network's certificate carries too (or that names only IP
// addresses, which browsers do not ask for by name) could never be
// served, and is refused with an error naming the names.
func TestOperatorTLSRefusesSharedNames(t *testing.T) {
	network := tlstest.New(t, "localhost", "127.0.0.1", "*.example.org")
	for _, hosts := range [][]string{{"localhost"}, {"127.0.0.1"}, {"chat.example.org"}, {"localhost", "10.0.0.1"}} {
		op := tlstest.New(t, hosts...)
		_, _, err := OperatorTLS(network.Server, op.Server.Certificates[0])
		if err == nil || !strings.Contains(err.Error(), "name of its own") {
			t.Errorf("operator certificate for %v: %v, want a refusal", hosts, err)
		}
	}
	if _, _, err := OperatorTLS(&tls.Config{}, network.Server.Certificates[0]); err == nil {
		t.Error("no network certificate: no error")
	}
	if _, _, err := OperatorTLS(network.Server, tls.Certificate{}); err == nil {
		t.Error("empty operator certificate: no error")
	}
}
