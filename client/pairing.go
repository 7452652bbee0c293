package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"anom/identity"
	anomv1 "anom/proto/anom/v1"
)

// Pairing by short code. Instead of the pairing request's long Code, a
// new device may publish its request on the server (PublishPairing) and
// show its short code (identity.PairingRequest.ShortCode, ten characters)
// with its fingerprint. One of the user's devices fetches the request by
// that code (LookupPairing), which checks that the request is the one the
// code was derived from and is for this user; the user compares the
// fingerprints and ApproveDevice approves it, as with the long code. The
// server keeps a published request for ten minutes.

// ErrPairingCode is returned by LookupPairing when the server has no
// pairing request under the code (unknown, mistyped, another user's or
// expired): the server's error, which says which, is wrapped too.
var ErrPairingCode = errors.New("client: unknown or expired pairing code")

// publishTries is how many requests PublishPairing makes when the server
// says the short code is in use (which only a collision of ten random
// characters, or someone replaying the request, causes).
const publishTries = 3

// PublishedPairing is a pairing request published on the server.
type PublishedPairing struct {
	// Request is the pairing request (its Fingerprint is to be shown).
	Request *identity.PairingRequest
	// Code is its short code, grouped ("7KQ2-M9XD-4T"), to be shown.
	Code string
	// Expires is when the server forgets it.
	Expires time.Time
}

// PublishPairing is BeginPairing that also publishes the request on the
// network's server under its short code, for ten minutes, so that the
// user types the short code on one of their devices instead of the long
// one. The server is checked to be of the network's root before anything
// is sent. Activate then uses the pairing's key, as after BeginPairing;
// calling it again replaces the pairing.
func (c *Client) PublishPairing(ctx context.Context, n Network, username string) (*PublishedPairing, error) {
	if n.Address == "" || len(n.Root) != ed25519.PublicKeySize {
		return nil, errors.New("publishing pairing: Network.Address and Network.Root are required")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return nil, ErrWiped
	}
	if c.dev != nil {
		return nil, errors.New("publishing pairing: device already activated")
	}
	seed, pub, err := c.suite().GenerateSignatureKey(c.rand)
	if err != nil {
		return nil, fmt.Errorf("publishing pairing: %w", err)
	}
	for try := 1; ; try++ {
		req, err := identity.NewPairingRequest(username, ed25519.PublicKey(pub), c.rand)
		if err != nil {
			return nil, err
		}
		p, err := publishPairing(ctx, c.tr, n, req)
		if IsCode(err, CodeExists) && try < publishTries {
			c.log.Warn("pairing code in use, trying another", "try", try)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("publishing pairing: %w", err)
		}
		if err := c.v.put(recPairing, encodePairing(seed, req)); err != nil {
			return nil, fmt.Errorf("publishing pairing: %w", err)
		}
		c.log.Info("pairing request published", "code", p.Code, "expires", p.Expires)
		return p, nil
	}
}

// publishPairing sends req to the server of n on a connection of its own
// (before authentication), once the server proved it is of n's root.
func publishPairing(ctx context.Context, tr Transport, n Network, req *identity.PairingRequest) (*PublishedPairing, error) {
	cn, err := dial(ctx, tr, n)
	if err != nil {
		return nil, err
	}
	defer cn.close()
	if _, err := cn.handshake(ctx); err != nil {
		return nil, err
	}
	if err := checkNetworkRoot(ctx, cn, n.Root); err != nil {
		return nil, err
	}
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_PublishPairing{PublishPairing: &anomv1.PublishPairing{Request: req.Encode()}}})
	if err != nil {
		return nil, err
	}
	r := resp.GetPairingPublished()
	if r == nil {
		return nil, fmt.Errorf("%w: no answer to the pairing request", ErrProtocol)
	}
	code := req.ShortCode()
	if r.GetCode() != code {
		return nil, fmt.Errorf("%w: the server stored the pairing request under %q, not its code %s", ErrProtocol, r.GetCode(), code)
	}
	return &PublishedPairing{Request: req, Code: code, Expires: time.UnixMilli(int64(min(r.GetExpiresAtMs(), 1<<62)))}, nil
}

// LookupPairing fetches the pairing request a new device of this user
// published under its short code (as the user typed it: case, dashes and
// spaces do not matter). The request returned is the one the code was
// derived from and is for this user; the user must still compare its
// Fingerprint with the one the new device shows before ApproveDevice. A
// code the server does not know (or no longer: codes last ten minutes)
// gives ErrPairingCode.
func (c *Client) LookupPairing(ctx context.Context, code string) (*identity.PairingRequest, error) {
	canon, err := identity.ParseShortCode(code)
	if err != nil {
		return nil, fmt.Errorf("looking up pairing code: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, err := c.ready()
	if err != nil {
		return nil, err
	}
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_FetchPairing{FetchPairing: &anomv1.FetchPairing{Code: canon}}})
	if IsCode(err, CodeNotFound) || IsCode(err, CodeExpired) {
		return nil, fmt.Errorf("looking up pairing code %s: %w: %w", canon, ErrPairingCode, err)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up pairing code %s: %w", canon, err)
	}
	p := resp.GetPairing()
	if p == nil {
		return nil, fmt.Errorf("looking up pairing code %s: %w: no pairing request in the answer", canon, ErrProtocol)
	}
	req, err := identity.DecodePairingRequest(p.GetRequest())
	if err != nil {
		return nil, fmt.Errorf("looking up pairing code %s: %w: %w", canon, ErrProtocol, err)
	}
	if !req.HasShortCode(canon) {
		c.log.Warn("the server answered a pairing code with another request", "code", canon)
		return nil, fmt.Errorf("looking up pairing code %s: %w: the server returned a request that is not the one of this code", canon, ErrPairing)
	}
	if req.Username != c.dev.username {
		return nil, fmt.Errorf("looking up pairing code %s: %w: the request is for %q, this device is %q's", canon, ErrPairing, req.Username, c.dev.username)
	}
	return req, nil
}
