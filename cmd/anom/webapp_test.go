package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"anom/client"
	"anom/internal/tlstest"
	"anom/internal/webapp"
)

// writeOperatorCert writes pki's server certificate (with its CA) and key
// as PEM files, as an operator's --tls-cert and --tls-key.
func writeOperatorCert(t *testing.T, pki *tlstest.PKI) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	c := pki.Server.Certificates[0]
	var certPEM []byte
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestServerWebApp: anom server serves the web app at / on its client
// port, with the operator certificate (--tls-cert) to a browser asking
// for its name, and the network's certificate to native clients, which
// still pin the network CA (by address, without a name); the API is not
// the app's. The log says where the app is and whether its messenger was
// built.
func TestServerWebApp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	op := tlstest.New(t, "web.anom.test")
	certFile, keyFile := writeOperatorCert(t, op)
	data := filepath.Join(t.TempDir(), "net")
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	srv := startAnomServer(t, data, addr, "--tls-cert", certFile, "--tls-key", keyFile)
	srv.waitLog(t, "web app at https://web.anom.test:"+port+"/ (operator certificate for web.anom.test)")
	log, _ := os.ReadFile(srv.log)
	built := !bytes.Contains(log, []byte("the web app's messenger is not built"))

	dialer := &net.Dialer{}
	browser := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: op.Pool, ServerName: "web.anom.test"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	get := func(c *http.Client, url string) (*http.Response, string) {
		t.Helper()
		res, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, body := get(browser, "https://web.anom.test:"+port+"/")
	if res.StatusCode != 200 || !strings.Contains(body, "<title>Calculator</title>") {
		t.Fatalf("GET / as a browser: %d\n%s", res.StatusCode, body)
	}
	if res.Header.Get("Content-Security-Policy") != webapp.ContentSecurityPolicy {
		t.Errorf("GET /: CSP %q", res.Header.Get("Content-Security-Policy"))
	}
	// The release the binary embeds is in the network's log: the proof
	// served verifies against the network's root for the manifest served.
	_, manifest := get(browser, "https://web.anom.test:"+port+webapp.ReleasePath)
	res, proof := get(browser, "https://web.anom.test:"+port+webapp.ProofPath)
	ni, err := dataDir(data).Info()
	if err != nil {
		t.Fatal(err)
	}
	rootKey, _ := hex.DecodeString(ni.RootPublicKey)
	if v, err := client.VerifyAppRelease(rootKey, []byte(manifest), []byte(proof)); res.StatusCode != 200 || err != nil {
		t.Errorf("GET %s: %d, verifying: %+v, %v", webapp.ProofPath, res.StatusCode, v, err)
	}
	res, _ = get(browser, "https://web.anom.test:"+port+"/dist/anom.wasm")
	if built && (res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/wasm") {
		t.Errorf("GET /dist/anom.wasm (built): %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !built && res.StatusCode != 404 {
		t.Errorf("GET /dist/anom.wasm (not built): %d", res.StatusCode)
	}

	// A native client: the network CA alone, by IP address (no SNI).
	pool, err := dataDir(data).CAPool()
	if err != nil {
		t.Fatal(err)
	}
	native := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, body = get(native, "https://"+addr+"/")
	if res.StatusCode != 200 || !strings.Contains(body, "Calculator") {
		t.Errorf("GET / over the network's certificate: %d", res.StatusCode)
	}
	if res.TLS.PeerCertificates[0].CheckSignatureFrom(op.CA) == nil {
		t.Error("a client asking for no name got the operator certificate")
	}
	if res, body = get(native, "https://"+addr+"/v1/ws"); res.StatusCode == 200 || strings.Contains(body, "Calculator") {
		t.Errorf("GET /v1/ws: %d, the app's", res.StatusCode)
	}
	srv.stop(t)

	// Refused: a key without a certificate, and a certificate the
	// network's own names shadow.
	if _, stderr, code := anomResult(t, "server", "--data", data, "--listen", freeAddr(t), "--tls-key", keyFile); code == 0 || !strings.Contains(stderr, "--tls-cert and --tls-key go together") {
		t.Errorf("--tls-key alone: exit %d, %s", code, stderr)
	}
	shared := tlstest.New(t, "localhost")
	c2, k2 := writeOperatorCert(t, shared)
	if _, stderr, code := anomResult(t, "server", "--data", data, "--listen", freeAddr(t), "--tls-cert", c2, "--tls-key", k2); code == 0 || !strings.Contains(stderr, "a DNS name of its own") {
		t.Errorf("operator certificate for localhost: exit %d, %s", code, stderr)
	}
}
