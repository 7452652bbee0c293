// Package servertest runs a real anom server for the tests of the packages
// that talk to one (client, chatui, cmd/anom): on a loopback port, with a
// distributor that issues activation codes.
package servertest

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/server"
)

// Serve runs srv on addr (say "127.0.0.1:0") and returns the address it
// listens on and a stop function, also run when the test ends: it cancels
// Serve, waits for it to return (an error fails the test) and then closes
// st, the server's store. Calling stop again does nothing.
func Serve(t testing.TB, srv *server.Server, st io.Closer, addr string) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		st.Close()
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

// Distributor is the distributor "shop", with a quota of 100 codes.
type Distributor struct {
	Key *identity.DistributorKey
}

// AddDistributor makes the distributor, certifies it with root and
// registers it with srv.
func AddDistributor(t testing.TB, srv *server.Server, root *identity.RootKey) *Distributor {
	t.Helper()
	key, err := identity.GenerateDistributorKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dc := &identity.DistributorCertificate{Name: "shop", Key: key.Public(), Quota: 100}
	if err := root.SignDistributorCertificate(dc); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddDistributor(context.Background(), dc); err != nil {
		t.Fatal(err)
	}
	return &Distributor{Key: key}
}

// Code issues one activation code for a subscription of months, to be
// used within valid, and imports it into srv.
func (d *Distributor) Code(t testing.TB, srv *server.Server, months int, valid time.Duration) identity.ActivationCode {
	t.Helper()
	c, err := identity.NewActivationCode(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := &identity.CodeBatch{Distributor: "shop", Months: uint8(months), Expires: time.Now().Add(valid), Hashes: [][identity.CodeHashSize]byte{c.Hash()}}
	if err := d.Key.SignCodeBatch(b); err != nil {
		t.Fatal(err)
	}
	if err := srv.ImportCodes(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return c
}

// Keys certifies a server's online keys (directory and escrow
// countersigning) with root, valid for 20 years from an hour ago so that
// tests moving the clock stay inside, and sets them in cfg with the root's
// public key.
func Keys(t testing.TB, cfg *server.Config, root *identity.RootKey) *identity.ServerKeys {
	t.Helper()
	k, err := identity.NewServerKeys(root, "server", time.Now(), 20*365*24*time.Hour, 1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RootPublic = root.Public()
	cfg.Directory, cfg.Countersign, cfg.CountersignCert = k.Directory, k.Countersign, k.CountersignCert
	return k
}
