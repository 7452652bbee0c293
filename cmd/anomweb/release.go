package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"anom/client"
)

// codeReleaseRefused: anom.verifyRelease refused the release (not shown
// to be in the network's transparency log), or activate refused to
// activate under an app release not in the log of the invite's network.
const codeReleaseRefused = "release-refused"

// releaseJSON is what anom.verifyRelease resolves to.
type releaseJSON struct {
	OK       bool   `json:"ok"`
	Version  string `json:"version"`
	LogIndex uint64 `json:"logIndex"`
	LoggedAt int64  `json:"loggedAt"`
	TreeSize uint64 `json:"treeSize"`
	TreeHead string `json:"treeHead"` // the signed tree head proven in (base64): the device's last head when larger
	Root     string `json:"root"`     // the root key it was checked against (hex)
	RootFrom string `json:"rootFrom"` // "device" (the unlocked device's network) or "pinned" (the root given)
}

// releaseDevice is the unlocked, activated device verifyRelease checks
// with: its network's root, and its check against the tree head it saw
// last (client.Client.CheckAppRelease).
type releaseDevice struct {
	root  []byte
	check func(manifest, proof []byte) (client.AppRelease, error)
}

// verifyRelease checks a release of the web app (anom.verifyRelease). With
// an unlocked, activated device (dev) it is the device's check: its
// network's root and the tree head it saw last. Else it is
// client.VerifyAppReleaseSeen with rootHex, the root the service worker
// pinned, and headB64, the tree head it pinned (base64; "" for none).
// With a device and a root given, they must be the same key.
func verifyRelease(dev *releaseDevice, manifest, proof, rootHex, headB64 string) (releaseJSON, error) {
	var given []byte
	if rootHex = strings.TrimSpace(rootHex); rootHex != "" {
		b, err := hex.DecodeString(rootHex)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return releaseJSON{}, coded(codeBadArgument, "root: want %d bytes of hex", ed25519.PublicKeySize)
		}
		given = b
	}
	var head []byte
	if headB64 = strings.TrimSpace(headB64); headB64 != "" {
		b, err := base64.StdEncoding.DecodeString(headB64)
		if err != nil {
			return releaseJSON{}, coded(codeBadArgument, "head: want base64")
		}
		head = b
	}
	var r client.AppRelease
	var err error
	root, from := given, "pinned"
	switch {
	case dev != nil && given != nil && !bytes.Equal(dev.root, given):
		return releaseJSON{}, coded(codeWrongNetwork, "the root given is not the network of this device")
	case dev != nil:
		root, from = dev.root, "device"
		r, err = dev.check([]byte(manifest), []byte(proof))
	case given == nil:
		return releaseJSON{}, coded(codeBadArgument, "root: none given and no device unlocked")
	default:
		r, err = client.VerifyAppReleaseSeen(root, []byte(manifest), []byte(proof), head)
	}
	if errors.Is(err, client.ErrReleaseRefused) {
		return releaseJSON{}, &codedError{code: codeReleaseRefused, err: err}
	}
	if err != nil {
		return releaseJSON{}, err
	}
	return releaseJSON{OK: true, Version: r.Version, LogIndex: r.LogIndex, LoggedAt: r.LoggedAt, TreeSize: r.TreeSize,
		TreeHead: base64.StdEncoding.EncodeToString(r.TreeHead), Root: hex.EncodeToString(root), RootFrom: from}, nil
}

// appRelease is the release of the web app the page runs, as the page
// told it (anom.setAppRelease), for the check at activation: the release
// must be in the log of the network the invite names.
type appRelease struct {
	mu       sync.Mutex
	expected bool          // the page runs the update gate: a release will be told
	known    chan struct{} // closed once one was told
	manifest string
	proof    string
	head     string // the tree head the service worker pinned (base64), if any
}

func newAppRelease() *appRelease { return &appRelease{known: make(chan struct{})} }

// expect records that the page runs the update gate: activation then
// waits for the release to be told.
func (a *appRelease) expect() {
	a.mu.Lock()
	a.expected = true
	a.mu.Unlock()
}

// set records the release the page runs.
func (a *appRelease) set(manifest, proof, head string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expected = true
	a.manifest, a.proof, a.head = manifest, proof, head
	select {
	case <-a.known:
	default:
		close(a.known)
	}
}

// checkInvite checks, before a device is activated with the invite of
// the network of root, that the app release the page runs is in that
// network's log (consistent with the head the worker pinned, if any):
// before activation the page trusts the root key the first release's
// proof named; the invite, got from a person and not from the server, is
// the first root the device can trust. A page that does not run the
// update gate (no release expected) is not checked; one that does waits
// at most wait for the release.
func (a *appRelease) checkInvite(root []byte, wait time.Duration) error {
	a.mu.Lock()
	expected := a.expected
	a.mu.Unlock()
	if !expected {
		return nil
	}
	select {
	case <-a.known:
	case <-time.After(wait):
		return coded(codeReleaseRefused, "the app's release is not known yet: it cannot be checked in the invite's network")
	}
	a.mu.Lock()
	manifest, proof, head := a.manifest, a.proof, a.head
	a.mu.Unlock()
	if _, err := verifyRelease(nil, manifest, proof, hex.EncodeToString(root), head); err != nil {
		return &codedError{code: codeReleaseRefused, err: fmt.Errorf("the app's release is not in the transparency log of the invite's network: %w", err)}
	}
	return nil
}
