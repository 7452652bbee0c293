//go:build js

package main

import (
	"errors"
	"syscall/js"
	"time"

	"anom/client"
)

// inviteReleaseWait bounds how long activation waits for the page to tell
// the app's release (anom.setAppRelease).
const inviteReleaseWait = 30 * time.Second

// verifyRelease(manifestJSON, proofJSON, rootHex?, headBase64?) checks a
// release of the web app against the network's transparency log
// (web/API.md).
func (a *app) verifyRelease(args []js.Value) (any, error) {
	manifest, err := argString(args, 0, "manifest")
	if err != nil {
		return nil, err
	}
	proof, err := argString(args, 1, "proof")
	if err != nil {
		return nil, err
	}
	rootHex, head := optArg(args, 2), optArg(args, 3)
	var dev *releaseDevice
	if c, err := a.current(); err == nil {
		id, err := c.Identity()
		switch {
		case err == nil:
			dev = &releaseDevice{root: id.Network.Root, check: c.CheckAppRelease}
		case !errors.Is(err, client.ErrNotActivated):
			return nil, err
		}
	}
	return verifyRelease(dev, manifest, proof, rootHex, head)
}

// logHead() → {size}: the size of the tree head the unlocked, activated
// device saw last (0 without one): release proofs are asked from it.
func (a *app) logHead([]js.Value) (any, error) {
	var size uint64
	if c, err := a.current(); err == nil {
		size = c.LogHeadSize()
	}
	return map[string]any{"size": size}, nil
}

// setAppRelease(manifestJSON?, proofJSON?, headBase64?): the page tells
// the release it runs (release.js), for the check at activation; with no
// argument, that it will (the update gate runs).
func (a *app) setAppRelease(args []js.Value) (any, error) {
	if len(args) == 0 || args[0].Type() != js.TypeString {
		a.release.expect()
		return true, nil
	}
	a.release.set(args[0].String(), optArg(args, 1), optArg(args, 2))
	return true, nil
}

// optArg is args[i] if it is a string, else "".
func optArg(args []js.Value, i int) string {
	if len(args) > i && args[i].Type() == js.TypeString {
		return args[i].String()
	}
	return ""
}
