// Package webreleasetest is a network's transparency log for tests of
// the web app's release gate: a root, a directory key certified by it
// signing the log's tree heads, and web releases logged in it.
package webreleasetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/translog"
	"anom/internal/webrelease"
)

// Network is a root and its log.
type Network struct {
	Root *identity.RootKey
	Log  *translog.Log
}

// New makes a network: a fresh root, and a log holding the certificate of
// a directory key that signs its heads.
func New(tb testing.TB) *Network {
	tb.Helper()
	ctx := context.Background()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	dk, err := identity.GenerateDirectoryKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	dc, err := root.CertifyOnlineKey(identity.RoleDirectory, "server-1", dk.Public(), now.Add(-time.Hour), 24*time.Hour, 1)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}})
	if err != nil {
		tb.Fatal(err)
	}
	di, err := l.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: dc.Encode()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.SetSigner(ctx, dk.Signer(), di); err != nil {
		tb.Fatal(err)
	}
	return &Network{Root: root, Log: l}
}

// RootPublic is the root's public key.
func (n *Network) RootPublic() ed25519.PublicKey { return ed25519.PublicKey(n.Root.Public()) }

// Append logs the release of m and returns its index.
func (n *Network) Append(tb testing.TB, m webrelease.Manifest) uint64 {
	tb.Helper()
	d, err := m.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	idx, err := n.Log.Append(context.Background(), identity.WebRelease{Digest: d}.Entry())
	if err != nil {
		tb.Fatal(err)
	}
	return idx
}

// Proof is release-proof.json for the entry at index, naming version.
func (n *Network) Proof(tb testing.TB, version string, index uint64) []byte {
	tb.Helper()
	b, err := webrelease.NewProof(context.Background(), n.Log, version, index, n.RootPublic())
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
