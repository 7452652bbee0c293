package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestHandshake(t *testing.T) {
	p := New(t, "127.0.0.1", "server.anom")
	if b, _ := pem.Decode(p.CAPEM()); b == nil || string(b.Bytes) != string(p.CADER) {
		t.Fatal("CAPEM does not hold the CA")
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.Server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, name := range []string{"server.anom", ""} { // "" checks the IP SAN
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.Pool, ServerName: name, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatalf("dial as %q: %v", name, err)
		}
		c.Close()
	}
	// Another name, and another CA, are refused.
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.Pool, ServerName: "other.anom"}); err == nil {
		c.Close()
		t.Fatal("a name the certificate does not hold was accepted")
	}
	other := x509.NewCertPool()
	other.AddCert(New(t, "127.0.0.1").CA)
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: other, ServerName: "server.anom"}); err == nil {
		c.Close()
		t.Fatal("a server from another CA was accepted")
	}
}
