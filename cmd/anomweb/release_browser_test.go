//go:build !js

package main

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"anom/internal/wasmtest"
	"anom/internal/webrelease"
	"anom/internal/webrelease/webreleasetest"
)

// TestAttackReleaseRootSwappedBrowser: in Chromium, with the real
// WebAssembly and the app as anom server serves it, an activated device
// checks the app's release against its own network's root and log head,
// not only the root the page was served with. Activation itself checked
// the release in the invite's network. Once alice's device is unlocked,
// the running release is verified under the device's network; then the
// server swaps the root key in what it serves (the release's proof from
// a log of its own, naming its own root): the device refuses it, the
// refusal is reported and the page goes back to a calculator that no
// longer hands the PIN to the messenger; anom.verifyRelease with the
// swapped root is "wrong-network".
func TestAttackReleaseRootSwappedBrowser(t *testing.T) {
	wasmtest.Chromium(t)
	u := newUINet(t)
	alice := uiBrowser(t, u.webNet, u.base)
	uiActivate(alice, nil, u.invite, u.code(t), "alice")

	type outcome struct {
		Version string `json:"version"`
		Error   string `json:"error"`
	}
	type info struct {
		Version  string `json:"version"`
		Verified bool   `json:"verified"`
		RootFrom string `json:"rootFrom"`
		Root     string `json:"root"`
	}
	uiWait(alice, `typeof anomRelease === 'object'`, "the update gate")
	if o := eval[outcome](alice, `anomRelease.check()`); o.Error != "" {
		t.Fatalf("the gate with alice unlocked: %+v", o)
	}
	i := eval[info](alice, `anomRelease.info()`)
	if !i.Verified || i.RootFrom != "device" || i.Version != u.app.Version() {
		t.Fatalf("the running release with alice unlocked: %+v, want verified under the device's network", i)
	}

	theirs := webreleasetest.New(t)
	m, err := webrelease.ParseManifest(u.app.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	swapped := theirs.Proof(t, m.Version, theirs.Append(t, m))
	if code := eval[string](alice, `anom.verifyRelease(`+js(string(u.app.Manifest()))+`, `+js(string(swapped))+`, `+
		js(hex.EncodeToString(theirs.RootPublic()))+`).then(() => 'ok', (e) => e.code)`); code != codeWrongNetwork {
		t.Errorf("verifyRelease with the swapped root on alice's device: %q, want %s", code, codeWrongNetwork)
	}
	if code := eval[string](alice, `anom.verifyRelease(`+js(string(u.app.Manifest()))+`, `+js(string(swapped))+`).then(() => 'ok', (e) => e.code)`); code != codeReleaseRefused {
		t.Errorf("verifyRelease of the swapped proof on alice's device: %q, want %s", code, codeReleaseRefused)
	}

	// The server serves the swapped proof; the page's next check (the
	// device unlocked) refuses the running release.
	u.app.SetProofSource(func(context.Context, uint64) ([]byte, error) { return swapped, nil })
	eval[any](alice, `window.__refused = []; window.addEventListener('anom:release-refused', (e) => __refused.push(e.detail)); true`)
	eval[outcome](alice, `anomRelease.check()`)
	type refusal struct {
		Running     bool   `json:"running"`
		Controlling bool   `json:"controlling"`
		Error       string `json:"error"`
	}
	rs := eval[[]refusal](alice, `__refused`)
	if len(rs) == 0 || !rs[0].Running || !rs[0].Controlling || !strings.Contains(rs[0].Error, "tree head not of this network") {
		t.Fatalf("the swapped root: refusals %+v, want the running release refused under the device's network", rs)
	}
	if !eval[bool](alice, `anomRelease.workerRefused()`) {
		t.Error("after the refusal, the page still hands the PIN to the messenger")
	}
	uiWait(alice, `!document.getElementById('messenger') && !__t.q('#calculator').hidden`, "the calculator after the refusal")
}
