//go:build js

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall/js"

	"anom/client"
	"anom/identity"
)

// Pairing: a new device of a user who has one already. The new device
// (after create, before activate) publishes a pairing request and shows
// its short code and fingerprint; on the existing device the user types
// the code, compares the fingerprint and approves; the new device then
// activates (with an activation code) under the same username.

// pair(invite, username) publishes the new device's pairing request and
// resolves to {code, fingerprint, expires}: the code to type on one of the
// user's devices, and the fingerprint both screens must show. If the
// server does not keep pairing requests, code is the long code instead
// and expires is 0.
func (a *app) pair(args []js.Value) (any, error) {
	inv, err := argString(args, 0, "invite")
	if err != nil {
		return nil, err
	}
	userStr, err := argString(args, 1, "username")
	if err != nil {
		return nil, err
	}
	n, err := readInvite(inv)
	if err != nil {
		return nil, err
	}
	user, err := identity.CanonicalUsername(strings.TrimSpace(userStr))
	if err != nil {
		return nil, coded(codeBadArgument, "username: %v", err)
	}
	c, err := a.current()
	if err != nil {
		return nil, err
	}
	if _, err := c.Identity(); err == nil {
		return nil, coded(codeActivated, "the device is already activated")
	}
	if err := a.release.checkInvite(n.Root, inviteReleaseWait); err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	p, err := c.PublishPairing(ctx, n, user)
	var se *client.ServerError
	switch {
	case err == nil:
		return map[string]any{"code": p.Code, "fingerprint": p.Request.Fingerprint(), "expires": p.Expires.UnixMilli()}, nil
	case errors.As(err, &se):
		// A server that does not keep pairing requests: the long code
		// needs nothing from it.
		req, err := c.BeginPairing(user)
		if err != nil {
			return nil, fmt.Errorf("pairing: %w", err)
		}
		return map[string]any{"code": req.Code(), "fingerprint": req.Fingerprint(), "expires": 0}, nil
	}
	return nil, fmt.Errorf("pairing: %w", err)
}

// pairingRequest reads a pairing code typed on an existing device: a
// short one is looked up on the server, a long one is the request.
func pairingRequest(ctx context.Context, c *client.Client, code string) (*identity.PairingRequest, error) {
	short, serr := identity.ParseShortCode(code)
	if serr != nil {
		req, err := identity.ParsePairingCode(strings.TrimSpace(code))
		if err != nil {
			return nil, coded(codeBadCode, "not a pairing code: the new device shows ten characters such as 7KQ2-M9XD-4T (%v)", serr)
		}
		return req, nil
	}
	req, err := c.LookupPairing(ctx, short)
	switch {
	case errors.Is(err, client.ErrPairingCode):
		return nil, coded(codeNotFound, "no pairing request under %s: check the code on the new device (codes last ten minutes): %v", short, err)
	case errors.Is(err, client.ErrPairing):
		return nil, coded(codePairing, "the pairing request under %s is not one of yours or not the code's: do not approve: %v", short, err)
	case err != nil:
		return nil, fmt.Errorf("looking up the pairing code: %w", err)
	}
	return req, nil
}

// lookupPairing(code) resolves to {username, fingerprint} of the pairing
// request under code, for the user to compare the fingerprint with the
// new device's screen before approveDevice.
func (a *app) lookupPairing(args []js.Value) (any, error) {
	c, id, err := a.activated()
	if err != nil {
		return nil, err
	}
	code, err := argString(args, 0, "code")
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	req, err := pairingRequest(ctx, c, code)
	if err != nil {
		return nil, err
	}
	if req.Username != id.Username {
		return nil, coded(codePairing, "this pairing code is for %s; only %s's devices can approve it", req.Username, req.Username)
	}
	return map[string]any{"username": req.Username, "fingerprint": req.Fingerprint()}, nil
}

// approveDevice(code, fingerprint) approves the new device whose request
// is under code, if its fingerprint is the one the user compared.
func (a *app) approveDevice(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	code, err := argString(args, 0, "code")
	if err != nil {
		return nil, err
	}
	fp, err := argString(args, 1, "fingerprint")
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	req, err := pairingRequest(ctx, c, code)
	if err != nil {
		return nil, err
	}
	if req.Fingerprint() != strings.TrimSpace(fp) {
		return nil, coded(codePairing, "the request under this code has another fingerprint than the one compared: not approved")
	}
	if err := c.ApproveDevice(ctx, req); err != nil {
		return nil, fmt.Errorf("approving the device: %w", err)
	}
	return map[string]any{"approved": true}, nil
}
