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

	dir      *identity.DirectoryKey // signs the log's heads
	dirIndex uint64                 // the entry of its certificate
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
	return &Network{Root: root, Log: l, dir: dk, dirIndex: di}
}

// Fork returns a fork of n's log: a log holding the same entries so far,
// under the same root and signed by the same directory key, that grows
// apart from n's from now on, as a server showing some devices a log of
// its own would keep.
func (n *Network) Fork(tb testing.TB) *Network {
	tb.Helper()
	ctx := context.Background()
	raw, err := n.Log.Entries(ctx, 0, n.Log.Size())
	if err != nil {
		tb.Fatal(err)
	}
	es := make([]translog.Entry, len(raw))
	for i, b := range raw {
		if es[i], err = translog.DecodeEntry(b); err != nil {
			tb.Fatal(err)
		}
	}
	l, err := translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := l.AppendBatch(ctx, es); err != nil {
		tb.Fatal(err)
	}
	if err := l.SetSigner(ctx, n.dir.Signer(), n.dirIndex); err != nil {
		tb.Fatal(err)
	}
	return &Network{Root: n.Root, Log: l, dir: n.dir, dirIndex: n.dirIndex}
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
	return n.ProofFrom(tb, version, index, 0)
}

// ProofFrom is Proof with the consistency proof from the tree head of
// size from.
func (n *Network) ProofFrom(tb testing.TB, version string, index, from uint64) []byte {
	tb.Helper()
	b, err := webrelease.NewProof(context.Background(), n.Log, version, index, n.RootPublic(), from)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
