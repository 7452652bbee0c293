package server

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"anom/identity"
	"anom/internal/webrelease"
)

// The server logs the web app's release at start, once: a restart with
// the same release appends nothing; a new release is appended; the proof
// it serves verifies against the root for that release only.
func TestWebReleaseLogged(t *testing.T) {
	files := map[string]string{"/index.html": strings.Repeat("a", 64)}
	m, err := webrelease.NewManifest(files)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := m.Digest()
	n := newNetwork(t, func(c *Config) { c.WebRelease = &identity.WebRelease{Digest: d} })
	ctx := context.Background()
	idx, err := n.srv.webReleaseIndex(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := json.Marshal(m)
	proof, err := n.srv.WebReleaseProof(ctx, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := webrelease.Verify(ed25519.PublicKey(n.root.Public()), mb, proof)
	if err != nil || v.LogIndex != idx || v.Version != hex.EncodeToString(d[:]) {
		t.Fatalf("verifying the served proof: %+v, %v", v, err)
	}
	size := n.srv.tlog.Size()

	n.restart()
	if i, _ := n.srv.webReleaseIndex(ctx, d); i != idx || n.srv.tlog.Size() != size {
		t.Errorf("after a restart: index %d (was %d), log size %d (was %d)", i, idx, n.srv.tlog.Size(), size)
	}

	files["/index.html"] = strings.Repeat("b", 64)
	m2, _ := webrelease.NewManifest(files)
	d2, _ := m2.Digest()
	n.stop()
	n.cfg.WebRelease = &identity.WebRelease{Digest: d2}
	n.start()
	i2, _ := n.srv.webReleaseIndex(ctx, d2)
	if i2 < size || n.srv.tlog.Size() != i2+1 {
		t.Errorf("a new release: index %d, log size %d (was %d)", i2, n.srv.tlog.Size(), size)
	}
	// Asked from the head the device saw with the first release: the
	// proof carries the consistency proof from it.
	proof2, err := n.srv.WebReleaseProof(ctx, d2, v.Head.Size)
	if err != nil {
		t.Fatal(err)
	}
	m2b, _ := json.Marshal(m2)
	if _, err := webrelease.VerifySeen(ed25519.PublicKey(n.root.Public()), m2b, proof2, v.Head); err != nil {
		t.Errorf("the new release, from the head seen before: %v", err)
	}
	bare, err := n.srv.WebReleaseProof(ctx, d2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := webrelease.VerifySeen(ed25519.PublicKey(n.root.Public()), m2b, bare, v.Head); !errors.Is(err, webrelease.ErrInconsistent) {
		t.Errorf("the new release without a consistency proof, from the head seen before: %v, want ErrInconsistent", err)
	}
	if _, err := webrelease.Verify(ed25519.PublicKey(n.root.Public()), mb, proof2); !errors.Is(err, webrelease.ErrNotLogged) {
		t.Errorf("the old manifest with the new release's proof: %v, want ErrNotLogged", err)
	}
	// Both stay provable; a release never logged is not.
	if _, err := n.srv.WebReleaseProof(ctx, d, 0); err != nil {
		t.Errorf("the first release after the second: %v", err)
	}
	if _, err := n.srv.WebReleaseProof(ctx, [32]byte{1}, 0); !errors.Is(err, ErrWebReleaseNotLogged) {
		t.Errorf("an unlogged release: %v, want ErrWebReleaseNotLogged", err)
	}
}
