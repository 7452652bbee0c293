package escrowtest

import (
	"context"
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
	stop     func()
}

// Stop shuts the custodian down (it then refuses connections). It is safe
// to call more than once.
func (c *Custodian) Stop() { c.stop() }

// StartCustodian runs custodian i (0-based) of the network until the test
// ends, with the given clock.
func (n *Network) StartCustodian(t testing.TB, i int, now func() time.Time) *Custodian {
	t.Helper()
	dir := t.TempDir()
	st, err := pebble.Open(filepath.Join(dir, "db"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Custodian{Store: st, Revoked: custodian.RevocationFile{Path: filepath.Join(dir, "revoked")}}
	c.Service, err = custodian.New(context.Background(), custodian.Config{
		Secret: n.Secrets[i], Policy: n.Policy, Root: n.Root.Public(), ServerKeys: n.ServerKeys(),
		Store: st, Revocations: c.Revoked, Now: now, ArchivePins: n.ArchivePins(),
	})
	if err != nil {
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
	stopped := false
	c.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(func() { c.stop(); st.Close() })
	return c
}
