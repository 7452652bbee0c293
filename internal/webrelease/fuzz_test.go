package webrelease_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"

	"anom/internal/webrelease"
	"anom/internal/webrelease/webreleasetest"
)

// FuzzVerify: the decoders of release.json and release-proof.json and the
// check of both never panic, and accept nothing but a logged release.
func FuzzVerify(f *testing.F) {
	n := webreleasetest.New(f)
	m, err := webrelease.NewManifest(map[string]string{"/index.html": strings.Repeat("a", 64)})
	if err != nil {
		f.Fatal(err)
	}
	mb, _ := json.Marshal(m)
	idx := n.Append(f, m)
	proof := n.Proof(f, m.Version, idx)
	root := n.RootPublic()
	f.Add(mb, proof)
	f.Add([]byte(`{"version":"","files":{}}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, manifest, proof []byte) {
		v, err := webrelease.Verify(ed25519.PublicKey(root), manifest, proof)
		if err != nil {
			return
		}
		if v.Version != m.Version {
			t.Fatalf("verified version %s, only %s is logged", v.Version, m.Version)
		}
	})
}

// FuzzVerifySeen: with a tree head seen, the consistency proof is decoded
// too; a proof is accepted only for a logged release and a head
// consistent with the one seen (in this test, the one log's).
func FuzzVerifySeen(f *testing.F) {
	n := webreleasetest.New(f)
	m, err := webrelease.NewManifest(map[string]string{"/index.html": strings.Repeat("a", 64)})
	if err != nil {
		f.Fatal(err)
	}
	mb, _ := json.Marshal(m)
	idx := n.Append(f, m)
	seen, err := webrelease.Verify(n.RootPublic(), mb, n.Proof(f, m.Version, idx))
	if err != nil {
		f.Fatal(err)
	}
	n.Append(f, m)
	f.Add(mb, n.ProofFrom(f, m.Version, idx, seen.TreeSize))
	f.Add(mb, n.Proof(f, m.Version, idx))
	f.Fuzz(func(t *testing.T, manifest, proof []byte) {
		v, err := webrelease.VerifySeen(n.RootPublic(), manifest, proof, seen.Head)
		if err != nil {
			return
		}
		if v.Version != m.Version || v.TreeSize < seen.TreeSize {
			t.Fatalf("verified %s at size %d, only %s is logged, seen at %d", v.Version, v.TreeSize, m.Version, seen.TreeSize)
		}
	})
}
