//go:build js

package main

import (
	"errors"
	"syscall/js"

	"anom/client"
)

// verifyRelease(manifestJSON, proofJSON, rootHex?) checks a release of
// the web app against the network's transparency log (web/API.md).
func (a *app) verifyRelease(args []js.Value) (any, error) {
	manifest, err := argString(args, 0, "manifest")
	if err != nil {
		return nil, err
	}
	proof, err := argString(args, 1, "proof")
	if err != nil {
		return nil, err
	}
	rootHex := ""
	if len(args) > 2 && args[2].Type() == js.TypeString {
		rootHex = args[2].String()
	}
	var deviceRoot []byte
	if c, err := a.current(); err == nil {
		id, err := c.Identity()
		switch {
		case err == nil:
			deviceRoot = id.Network.Root
		case !errors.Is(err, client.ErrNotActivated):
			return nil, err
		}
	}
	return verifyRelease(deviceRoot, manifest, proof, rootHex)
}
