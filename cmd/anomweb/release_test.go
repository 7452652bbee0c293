package main

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

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

	r, err := verifyRelease(nil, string(mb), proof, rootHex)
	if err != nil || !r.OK || r.Version != m.Version || r.LogIndex != idx || r.RootFrom != "pinned" || r.Root != rootHex {
		t.Errorf("pinned root: %+v, %v", r, err)
	}
	if r, err := verifyRelease(n.RootPublic(), string(mb), proof, ""); err != nil || r.RootFrom != "device" {
		t.Errorf("the device's root: %+v, %v", r, err)
	}
	unlogged, _ := webrelease.NewManifest(map[string]string{"/index.html": strings.Repeat("b", 64)})
	ub, _ := json.Marshal(unlogged)
	if _, err := verifyRelease(nil, string(ub), proof, rootHex); errorCode(err) != codeReleaseRefused {
		t.Errorf("an unlogged release: %v (code %s)", err, errorCode(err))
	}
	other := webreleasetest.New(t)
	if _, err := verifyRelease(other.RootPublic(), string(mb), proof, rootHex); errorCode(err) != codeWrongNetwork {
		t.Errorf("pinned root not the device's: %v (code %s)", err, errorCode(err))
	}
	if _, err := verifyRelease(other.RootPublic(), string(mb), proof, ""); errorCode(err) != codeReleaseRefused {
		t.Errorf("proof of another network: %v (code %s)", err, errorCode(err))
	}
	if _, err := verifyRelease(nil, string(mb), proof, ""); errorCode(err) != codeBadArgument {
		t.Errorf("no root: %v (code %s)", err, errorCode(err))
	}
}
