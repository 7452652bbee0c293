package escrowtest

import (
	"context"
	"crypto/ed25519"
	"net"
	"path/filepath"
	"testing"
	"time"

	"anom/internal/custodian"
	"anom/internal/store/pebble"
)

// Custodian is a custodian service running in-process over TLS on loopback.
type Custodian struct {
	Service  *custodian.Service
	Endpoint custodian.Endpoint
	Store    *pebble.Store
	Revoked  custodian.RevocationFile
	// Dir holds its store (Dir/db), certificate and revocation list.
	Dir   string
	stop  func()
	close func()
}

// Stop shuts the custodian down (it then refuses connections). It is safe
// to call more than once.
func (c *Custodian) Stop() { c.stop() }

// StoreDir is the directory of the custodian's Pebble store.
func (c *Custodian) StoreDir() string { return filepath.Join(c.Dir, "db") }

// StartCustodian runs custodian i (0-based) of the network until the test
// ends, with the given clock. It takes the archive's heads signed with
// n.ArchiveKey.
func (n *Network) StartCustodian(t testing.TB, i int, now func() time.Time) *Custodian {
	t.Helper()
	return n.StartCustodianIn(t, i, now, t.TempDir())
}

// StartCustodianIn runs custodian i on the data kept in dir (a custodian
// stopped with Close restarts on it), on a new port; the certificate, and
// so the endpoint's pin, stay the same.
func (n *Network) StartCustodianIn(t testing.TB, i int, now func() time.Time, dir string) *Custodian {
	t.Helper()
	st, err := pebble.Open(filepath.Join(dir, "db"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Custodian{Store: st, Dir: dir, Revoked: custodian.RevocationFile{Path: filepath.Join(dir, "revoked")}}
	c.Service, err = custodian.New(context.Background(), custodian.Config{
		Secret: n.Secrets[i], Policy: n.Policy, Root: n.Root.Public(),
		Store: st, Revocations: c.Revoked, Now: now, ArchiveKey: n.ArchiveKey.Public().(ed25519.PublicKey), ArchivePins: n.ArchivePins(),
	})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	cert, err := custodian.LoadOrCreateCertificate(dir, nil, now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Endpoint = custodian.Endpoint{URL: "https://" + ln.Addr().String(), Pin: custodian.Pin(cert)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Service.Serve(ctx, ln, cert) }()
	stopped, closed := false, false
	c.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	c.close = func() {
		c.stop()
		if !closed {
			closed = true
			st.Close()
		}
	}
	t.Cleanup(c.close)
	return c
}

// Close stops the custodian and closes its store, so that its data can be
// opened by someone else (an attacker editing it) or restarted with
// StartCustodianIn. It is safe to call more than once.
func (c *Custodian) Close() { c.close() }
