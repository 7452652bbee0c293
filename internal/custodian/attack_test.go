package custodian_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"anom/internal/custodian"
)

// TestAttackAnonymousCustodianRequest: anyone who could reach a custodian
// posted a request straight to it (bypassing the archive and its audit
// log) and the custodian read up to 64 MiB of it and answered. Custodians
// now answer only an archive whose client certificate they pin: an
// anonymous client, or one with another certificate, fails the TLS
// handshake before a byte of its request is read; the pinned archive is
// answered; requests are bounded to what a real batch needs (4 MiB by
// default); and the HTTP handler itself refuses an unpinned client
// without reading the body, whatever server it is mounted in.
func TestAttackAnonymousCustodianRequest(t *testing.T) {
	f := newFixture(t)
	ep := f.cust[0].client.Endpoint
	env := f.env(aliceWarrant(t, f), f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), []byte("hello bob")))
	body, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	post := func(cert *tls.Certificate, b []byte) (*http.Response, error) {
		tc := &tls.Config{InsecureSkipVerify: true} // the attacker trusts any custodian
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Post(ep.URL+custodian.AnswerPath, "application/octet-stream", bytes.NewReader(b))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := post(nil, body); err == nil {
		t.Fatalf("an anonymous request was read and answered: HTTP %d", resp.StatusCode)
	}
	other, err := custodian.LoadOrCreateClientCertificate(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := post(&other, body); err == nil {
		t.Fatalf("a request with an unpinned certificate was read and answered: HTTP %d", resp.StatusCode)
	}
	if resp, err := post(&f.net.ArchiveCert, body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the pinned archive's request: %v %v", resp, err)
	}
	// The Client refuses to go without a certificate.
	if _, err := custodian.NewClient(ep, tls.Certificate{}, 0); !errors.Is(err, custodian.ErrUnauthenticated) {
		t.Fatalf("a client without a certificate: %v", err)
	}

	// Requests are bounded to what a batch needs.
	if custodian.DefaultMaxRequestBytes > 4<<20 {
		t.Fatalf("default request bound %d bytes", custodian.DefaultMaxRequestBytes)
	}
	big := append(bytes.Clone(body), make([]byte, 1<<20)...) // this custodian's bound is 1 MiB
	if resp, err := post(&f.net.ArchiveCert, big); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("an oversize request from the archive: %v %v", resp, err)
	}

	// The handler alone, mounted in a server that asks for no client
	// certificate, refuses before reading the body.
	srv := httptest.NewTLSServer(f.cust[0].svc.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+custodian.AnswerPath, bytes.NewReader(make([]byte, 8<<20)))
	req.ContentLength = 8 << 20
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || eb.Code != string(custodian.CodeUnauthenticated) {
		t.Fatalf("handler without a client certificate: HTTP %d %q", resp.StatusCode, eb.Code)
	}
}
