package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"anom/client"
	"anom/internal/webrelease"
	"anom/internal/webrelease/webreleasetest"
)

// anom.verifyRelease: a logged release verifies against the pinned root
// or the device's network; an unlogged one is refused with
// "release-refused"; a pinned root that is not the device's network is
// "wrong-network"; no root at all is "bad-argument".
func TestVerifyReleaseJS(t *testing.T) {
	n := webreleasetest.New(t)
	m, err := webrelease.NewManifest(map[string]string{"/index.html": strings.Repeat("a", 64)})
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := json.Marshal(m)
	idx := n.Append(t, m)
	proof := string(n.Proof(t, m.Version, idx))
	rootHex := hex.EncodeToString(n.RootPublic())
	device := func(root []byte) *releaseDevice {
		return &releaseDevice{root: root, check: func(manifest, proof []byte) (client.AppRelease, error) {
			return client.VerifyAppRelease(root, manifest, proof)
		}}
	}

	r, err := verifyRelease(nil, string(mb), proof, rootHex, "")
	if err != nil || !r.OK || r.Version != m.Version || r.LogIndex != idx || r.RootFrom != "pinned" || r.Root != rootHex || r.TreeHead == "" {
		t.Errorf("pinned root: %+v, %v", r, err)
	}
	if r, err := verifyRelease(device(n.RootPublic()), string(mb), proof, "", ""); err != nil || r.RootFrom != "device" {
		t.Errorf("the device's root: %+v, %v", r, err)
	}
	unlogged, _ := webrelease.NewManifest(map[string]string{"/index.html": strings.Repeat("b", 64)})
	ub, _ := json.Marshal(unlogged)
	if _, err := verifyRelease(nil, string(ub), proof, rootHex, ""); errorCode(err) != codeReleaseRefused {
		t.Errorf("an unlogged release: %v (code %s)", err, errorCode(err))
	}
	other := webreleasetest.New(t)
	if _, err := verifyRelease(device(other.RootPublic()), string(mb), proof, rootHex, ""); errorCode(err) != codeWrongNetwork {
		t.Errorf("pinned root not the device's: %v (code %s)", err, errorCode(err))
	}
	if _, err := verifyRelease(device(other.RootPublic()), string(mb), proof, "", ""); errorCode(err) != codeReleaseRefused {
		t.Errorf("proof of another network: %v (code %s)", err, errorCode(err))
	}
	if _, err := verifyRelease(nil, string(mb), proof, "", ""); errorCode(err) != codeBadArgument {
		t.Errorf("no root: %v (code %s)", err, errorCode(err))
	}
	if _, err := verifyRelease(nil, string(mb), proof, rootHex, "not base64!"); errorCode(err) != codeBadArgument {
		t.Errorf("a head not base64: %v (code %s)", err, errorCode(err))
	}

	// With the head the worker pinned: a proof at a larger head needs the
	// consistency proof from it.
	n.Append(t, m)
	if r2, err := verifyRelease(nil, string(mb), string(n.ProofFrom(t, m.Version, idx, r.TreeSize)), rootHex, r.TreeHead); err != nil || r2.TreeSize != r.TreeSize+1 {
		t.Errorf("from the pinned head: %+v, %v", r2, err)
	}
	if _, err := verifyRelease(nil, string(mb), string(n.Proof(t, m.Version, idx)), rootHex, r.TreeHead); errorCode(err) != codeReleaseRefused ||
		!strings.Contains(err.Error(), "not consistent") {
		t.Errorf("a larger head without a consistency proof: %v (code %s)", err, errorCode(err))
	}
}

// TestAttackActivationReleaseOtherNetwork: before activation the page
// trusts the root its first release's proof named; activate (and pair)
// check the release the page runs in the log of the invite's network
// first. A release logged in another network (a server that swapped the
// root key in what it served) is refused, as is one the page never told
// when it runs the update gate; one in the invite's network passes; a
// page without the gate is not checked.
func TestAttackActivationReleaseOtherNetwork(t *testing.T) {
	mine := webreleasetest.New(t)
	theirs := webreleasetest.New(t)
	m, _ := webrelease.NewManifest(map[string]string{"/index.html": strings.Repeat("a", 64)})
	mb, _ := json.Marshal(m)
	theirProof := string(theirs.Proof(t, m.Version, theirs.Append(t, m)))
	myIdx := mine.Append(t, m)
	myProof := string(mine.Proof(t, m.Version, myIdx))

	if err := newAppRelease().checkInvite(mine.RootPublic(), time.Millisecond); err != nil {
		t.Errorf("a page without the update gate: %v", err)
	}
	waiting := newAppRelease()
	waiting.expect()
	if err := waiting.checkInvite(mine.RootPublic(), 10*time.Millisecond); errorCode(err) != codeReleaseRefused {
		t.Errorf("the gate runs, no release told: %v (code %s)", err, errorCode(err))
	}
	rel := newAppRelease()
	rel.expect()
	go func() {
		time.Sleep(20 * time.Millisecond)
		rel.set(string(mb), theirProof, "")
	}()
	if err := rel.checkInvite(mine.RootPublic(), 5*time.Second); errorCode(err) != codeReleaseRefused ||
		!strings.Contains(err.Error(), "invite's network") {
		t.Errorf("a release in another network's log: %v (code %s)", err, errorCode(err))
	}
	// The worker pinned the other network's head: no reference for this
	// one either.
	tv, err := webrelease.Verify(theirs.RootPublic(), mb, []byte(theirProof))
	if err != nil {
		t.Fatal(err)
	}
	th, _ := tv.Head.MarshalBinary()
	rel.set(string(mb), myProof, base64.StdEncoding.EncodeToString(th))
	if err := rel.checkInvite(mine.RootPublic(), time.Second); errorCode(err) != codeReleaseRefused {
		t.Errorf("the invite's release with another network's head pinned: %v (code %s)", err, errorCode(err))
	}
	rel.set(string(mb), myProof, "")
	if err := rel.checkInvite(mine.RootPublic(), time.Second); err != nil {
		t.Errorf("a release in the invite's network: %v", err)
	}
}
