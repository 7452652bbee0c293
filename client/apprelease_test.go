package client

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"anom/internal/webrelease"
	"anom/internal/webrelease/webreleasetest"
)

// appManifest returns a release manifest of one file with the given
// content hash digit, and its JSON.
func appManifest(t *testing.T, digit string) (webrelease.Manifest, []byte) {
	t.Helper()
	m, err := webrelease.NewManifest(map[string]string{"/index.html": strings.Repeat(digit, 64), "/app.js": strings.Repeat("e", 64)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

func TestVerifyAppRelease(t *testing.T) {
	n := webreleasetest.New(t)
	m, mb := appManifest(t, "a")
	idx := n.Append(t, m)
	got, err := VerifyAppRelease(n.RootPublic(), mb, n.Proof(t, m.Version, idx))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != m.Version || got.LogIndex != idx || got.TreeSize != idx+1 || got.LoggedAt == 0 {
		t.Errorf("verified %+v, want version %s at %d", got, m.Version, idx)
	}
	// Proven in a later, larger tree too.
	m2, _ := appManifest(t, "b")
	n.Append(t, m2)
	if got, err := VerifyAppRelease(n.RootPublic(), mb, n.Proof(t, m.Version, idx)); err != nil || got.TreeSize != idx+2 {
		t.Errorf("in a larger tree: %+v, %v", got, err)
	}
}

// TestAttackUnloggedRelease: a release the log does not hold is refused,
// whatever entry the server proves in its place: the entry of another
// release, an entry of another kind, or a proof of a logged release's
// index with the unlogged release's entry swapped in.
func TestAttackUnloggedRelease(t *testing.T) {
	n := webreleasetest.New(t)
	logged, _ := appManifest(t, "a")
	idx := n.Append(t, logged)
	unlogged, ub := appManifest(t, "f")

	refused := func(name string, proof []byte) {
		t.Helper()
		if _, err := VerifyAppRelease(n.RootPublic(), ub, proof); !errors.Is(err, ErrReleaseRefused) {
			t.Errorf("%s: %v, want ErrReleaseRefused", name, err)
		}
	}
	// The proof of the logged release, offered for the unlogged one.
	refused("another release's proof", n.Proof(t, unlogged.Version, idx))
	// The directory key's certificate, entry 0.
	refused("another kind of entry", n.Proof(t, unlogged.Version, 0))
	// The unlogged release's entry, with the logged one's inclusion proof.
	var p webrelease.Proof
	if err := json.Unmarshal(n.Proof(t, unlogged.Version, idx), &p); err != nil {
		t.Fatal(err)
	}
	other := webreleasetest.New(t)
	oi := other.Append(t, unlogged)
	var op webrelease.Proof
	if err := json.Unmarshal(other.Proof(t, unlogged.Version, oi), &op); err != nil {
		t.Fatal(err)
	}
	p.Entry = op.Entry
	b, _ := json.Marshal(p)
	refused("the unlogged entry in the logged one's place", b)
}

// TestAttackReleaseProofOtherNetwork: a release logged in another
// network's log (a tree head not signed under the pinned root) is
// refused, even though its proof names that network's root.
func TestAttackReleaseProofOtherNetwork(t *testing.T) {
	mine := webreleasetest.New(t)
	theirs := webreleasetest.New(t)
	m, mb := appManifest(t, "c")
	idx := theirs.Append(t, m)
	if _, err := VerifyAppRelease(theirs.RootPublic(), mb, theirs.Proof(t, m.Version, idx)); err != nil {
		t.Fatalf("in its own network: %v", err)
	}
	_, err := VerifyAppRelease(mine.RootPublic(), mb, theirs.Proof(t, m.Version, idx))
	if !errors.Is(err, ErrReleaseRefused) || !errors.Is(err, webrelease.ErrTreeHead) {
		t.Errorf("a head of another network: %v, want ErrTreeHead", err)
	}
}

// TestAttackReleaseManifestTampered: a manifest whose files were changed
// but whose version was kept (the logged one) is refused, as is a proof
// whose tree head or inclusion path was altered.
func TestAttackReleaseManifestTampered(t *testing.T) {
	n := webreleasetest.New(t)
	m, _ := appManifest(t, "a")
	idx := n.Append(t, m)
	n.Append(t, m) // a second entry: the inclusion path is not empty
	proof := n.Proof(t, m.Version, idx)
	tampered := webrelease.Manifest{Version: m.Version, Files: map[string]string{"/index.html": strings.Repeat("0", 64), "/app.js": strings.Repeat("e", 64)}}
	tb, _ := json.Marshal(tampered)
	if _, err := VerifyAppRelease(n.RootPublic(), tb, proof); !errors.Is(err, webrelease.ErrBadManifest) {
		t.Errorf("files changed under the logged version: %v, want ErrBadManifest", err)
	}
	mb, _ := json.Marshal(m)
	var p webrelease.Proof
	if err := json.Unmarshal(proof, &p); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(p *webrelease.Proof){
		"tree head byte":  func(p *webrelease.Proof) { p.TreeHead[20] ^= 1 },
		"inclusion path":  func(p *webrelease.Proof) { p.InclusionProof[len(p.InclusionProof)-1] ^= 1 },
		"log index":       func(p *webrelease.Proof) { p.LogIndex++ },
		"entry timestamp": func(p *webrelease.Proof) { p.Entry[5] ^= 1 },
	} {
		q := p
		q.TreeHead = append([]byte(nil), p.TreeHead...)
		q.InclusionProof = append([]byte(nil), p.InclusionProof...)
		q.Entry = append([]byte(nil), p.Entry...)
		mutate(&q)
		b, _ := json.Marshal(q)
		if _, err := VerifyAppRelease(n.RootPublic(), mb, b); !errors.Is(err, ErrReleaseRefused) {
			t.Errorf("%s altered: %v, want ErrReleaseRefused", name, err)
		}
	}
	if _, err := VerifyAppRelease(n.RootPublic(), mb, []byte(`{"version":1}`)); !errors.Is(err, webrelease.ErrBadProof) {
		t.Errorf("a malformed proof: %v", err)
	}
}

// TestAttackForkedReleaseLog: a release proof must be consistent with
// the tree head the device saw last. A server that keeps a fork of its
// log (the same entries up to a point, then a release logged only in the
// fork, under heads the directory key signed) and shows it to a device
// that saw the real log past that point is refused, whether the proof
// carries no consistency proof, one made in the fork, or one of the real
// log; once a device saw the fork, the real log is refused the same way.
// A proof at an older head must carry the consistency proof to the
// device's head. The real log's releases, proven from the device's head,
// verify.
func TestAttackForkedReleaseLog(t *testing.T) {
	n := webreleasetest.New(t)
	a, ab := appManifest(t, "a")
	ia := n.Append(t, a)
	first, err := VerifyAppRelease(n.RootPublic(), ab, n.Proof(t, a.Version, ia))
	if err != nil {
		t.Fatal(err)
	}

	fork := n.Fork(t)
	b, bb := appManifest(t, "b")
	ib := fork.Append(t, b)
	fork.Append(t, b)
	fork.Append(t, b)
	// The fork alone verifies: without a head seen, nothing tells.
	if _, err := VerifyAppRelease(n.RootPublic(), bb, fork.Proof(t, b.Version, ib)); err != nil {
		t.Fatalf("the forked release without a head seen: %v", err)
	}
	// The real log grows apart; the device sees it.
	c, cb := appManifest(t, "c")
	ic := n.Append(t, c)
	seen, err := VerifyAppReleaseSeen(n.RootPublic(), cb, n.ProofFrom(t, c.Version, ic, first.TreeSize), first.TreeHead)
	if err != nil {
		t.Fatalf("the real log from the first head: %v", err)
	}

	forked := func(name string, proof []byte) {
		t.Helper()
		_, err := VerifyAppReleaseSeen(n.RootPublic(), bb, proof, seen.TreeHead)
		if !errors.Is(err, ErrReleaseRefused) || !errors.Is(err, ErrReleaseLogForked) {
			t.Errorf("%s: %v, want ErrReleaseLogForked", name, err)
		}
	}
	forked("the forked release without a consistency proof", fork.Proof(t, b.Version, ib))
	forked("the forked release with the fork's consistency proof", fork.ProofFrom(t, b.Version, ib, seen.TreeSize))
	var fp, rp webrelease.Proof
	if err := json.Unmarshal(fork.ProofFrom(t, b.Version, ib, seen.TreeSize), &fp); err != nil {
		t.Fatal(err)
	}
	n.Append(t, c)
	n.Append(t, c)
	n.Append(t, c)
	if err := json.Unmarshal(n.ProofFrom(t, c.Version, ic, seen.TreeSize), &rp); err != nil {
		t.Fatal(err)
	}
	fp.Consistency = rp.Consistency
	mixed, _ := json.Marshal(fp)
	forked("the forked release with the real log's consistency proof", mixed)

	// A device that saw the fork first refuses the real log.
	fseen, err := VerifyAppReleaseSeen(n.RootPublic(), bb, fork.ProofFrom(t, b.Version, ib, first.TreeSize), first.TreeHead)
	if err != nil {
		t.Fatalf("the fork, consistent with the first head: %v", err)
	}
	if _, err := VerifyAppReleaseSeen(n.RootPublic(), cb, n.ProofFrom(t, c.Version, ic, fseen.TreeSize), fseen.TreeHead); !errors.Is(err, ErrReleaseLogForked) {
		t.Errorf("the real log after the fork's head: %v, want ErrReleaseLogForked", err)
	}

	// The real log, from the device's head: verified, at the new head.
	got, err := VerifyAppReleaseSeen(n.RootPublic(), cb, n.ProofFrom(t, c.Version, ic, seen.TreeSize), seen.TreeHead)
	if err != nil || got.TreeSize != n.Log.Size() {
		t.Fatalf("the real log's release from the head seen: %+v, %v", got, err)
	}
	// A proof at an older head (seen's), against the newer one: refused
	// without the consistency proof to it, verified with it.
	var op webrelease.Proof
	if err := json.Unmarshal(n.Proof(t, c.Version, ic), &op); err != nil {
		t.Fatal(err)
	}
	op.TreeHead = seen.TreeHead
	ip, err := n.Log.InclusionProof(ic, seen.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	op.InclusionProof, _ = ip.MarshalBinary()
	old, _ := json.Marshal(op)
	if _, err := VerifyAppReleaseSeen(n.RootPublic(), cb, old, got.TreeHead); !errors.Is(err, ErrReleaseLogForked) {
		t.Errorf("a proof at an older head without a consistency proof: %v, want ErrReleaseLogForked", err)
	}
	cp, err := n.Log.ConsistencyProof(seen.TreeSize, got.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	op.Consistency, _ = cp.MarshalBinary()
	old, _ = json.Marshal(op)
	if r, err := VerifyAppReleaseSeen(n.RootPublic(), cb, old, got.TreeHead); err != nil || r.TreeSize != seen.TreeSize {
		t.Errorf("a proof at an older head with the consistency proof to the head seen: %+v, %v", r, err)
	}
	// A head seen of another network is no reference.
	other := webreleasetest.New(t)
	oi := other.Append(t, a)
	ov, err := VerifyAppRelease(other.RootPublic(), ab, other.Proof(t, a.Version, oi))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAppReleaseSeen(n.RootPublic(), cb, n.Proof(t, c.Version, ic), ov.TreeHead); !errors.Is(err, ErrReleaseLogForked) {
		t.Errorf("a head seen of another network: %v, want ErrReleaseLogForked", err)
	}
}
