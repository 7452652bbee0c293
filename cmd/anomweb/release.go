package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"

	"anom/client"
)

// codeReleaseRefused: anom.verifyRelease refused the release (not shown
// to be in the network's transparency log).
const codeReleaseRefused = "release-refused"

// releaseJSON is what anom.verifyRelease resolves to.
type releaseJSON struct {
	OK       bool   `json:"ok"`
	Version  string `json:"version"`
	LogIndex uint64 `json:"logIndex"`
	LoggedAt int64  `json:"loggedAt"`
	TreeSize uint64 `json:"treeSize"`
	Root     string `json:"root"`     // the root key it was checked against (hex)
	RootFrom string `json:"rootFrom"` // "device" (the unlocked device's network) or "pinned" (the root given)
}

// verifyRelease checks a release of the web app (anom.verifyRelease) with
// client.VerifyAppRelease. The root is the unlocked device's network's
// (deviceRoot) when there is one, else rootHex, the root the service
// worker pinned; with both they must be the same key.
func verifyRelease(deviceRoot []byte, manifest, proof, rootHex string) (releaseJSON, error) {
	var given []byte
	if rootHex = strings.TrimSpace(rootHex); rootHex != "" {
		b, err := hex.DecodeString(rootHex)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return releaseJSON{}, coded(codeBadArgument, "root: want %d bytes of hex", ed25519.PublicKeySize)
		}
		given = b
	}
	root, from := given, "pinned"
	switch {
	case deviceRoot != nil && given != nil && !bytes.Equal(deviceRoot, given):
		return releaseJSON{}, coded(codeWrongNetwork, "the root given is not the network of this device")
	case deviceRoot != nil:
		root, from = deviceRoot, "device"
	case given == nil:
		return releaseJSON{}, coded(codeBadArgument, "root: none given and no device unlocked")
	}
	r, err := client.VerifyAppRelease(root, []byte(manifest), []byte(proof))
	if errors.Is(err, client.ErrReleaseRefused) {
		return releaseJSON{}, &codedError{code: codeReleaseRefused, err: err}
	}
	if err != nil {
		return releaseJSON{}, err
	}
	return releaseJSON{OK: true, Version: r.Version, LogIndex: r.LogIndex, LoggedAt: r.LoggedAt, TreeSize: r.TreeSize,
		Root: hex.EncodeToString(root), RootFrom: from}, nil
}
