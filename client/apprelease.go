package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"anom/internal/translog"
	"anom/internal/webrelease"
)

// ErrReleaseRefused is matched (errors.Is) by every failure of
// VerifyAppRelease: the web app's release is not shown to be in the
// network's transparency log.
var ErrReleaseRefused = webrelease.ErrRefused

// ErrReleaseLogForked is matched, with ErrReleaseRefused, when a release
// proof's tree head is not shown to be consistent with the tree head the
// device saw last: the server may be showing this device a fork of the
// log.
var ErrReleaseLogForked = webrelease.ErrInconsistent

// AppRelease is a release of the web app shown to be in the network's
// transparency log.
type AppRelease struct {
	Version  string // the release's version: the hex of its manifest's digest
	LogIndex uint64 // the log entry of the release
	LoggedAt int64  // when the server logged it, milliseconds since the Unix epoch
	TreeSize uint64 // the size of the signed tree head it was proven in
	// TreeHead is that signed tree head (its translog encoding), verified
	// and consistent with the head the check was given: what the device
	// keeps as the last head it saw when it is the larger.
	TreeHead []byte
}

// VerifyAppRelease checks a release of the web app against the network of
// root, for a device that has seen no tree head of its log yet (first
// use): VerifyAppReleaseSeen with none.
func VerifyAppRelease(root ed25519.PublicKey, manifest, proof []byte) (AppRelease, error) {
	return VerifyAppReleaseSeen(root, manifest, proof, nil)
}

// VerifyAppReleaseSeen checks a release of the web app against the
// network of root: manifest is its release.json (every file's SHA-256 and
// the version, the digest of them), proof its release-proof.json (the
// log entry, its inclusion proof and a signed tree head). The tree head
// must be signed by a directory key whose certificate, logged in that
// tree, chains to root; the entry must be in that tree at its index and
// log exactly the manifest's digest. seen is the signed tree head the
// device saw last (translog encoding; empty: none): the proof's head must
// be consistent with it, by the consistency proof the proof carries (RFC
// 9162), else ErrReleaseLogForked. The proof's own root field is ignored.
// It uses no connection and no device: the web app's service worker
// takes an update only when this holds (web/README.md).
func VerifyAppReleaseSeen(root ed25519.PublicKey, manifest, proof, seen []byte) (AppRelease, error) {
	var head translog.SignedTreeHead
	if len(seen) > 0 {
		if err := head.UnmarshalBinary(seen); err != nil {
			return AppRelease{}, fmt.Errorf("%w: the tree head the device saw: %w", ErrReleaseRefused, err)
		}
	}
	return verifyAppRelease(root, manifest, proof, head)
}

func verifyAppRelease(root ed25519.PublicKey, manifest, proof []byte, seen translog.SignedTreeHead) (AppRelease, error) {
	v, err := webrelease.VerifySeen(root, manifest, proof, seen)
	if err != nil {
		if !errors.Is(err, ErrReleaseRefused) {
			return AppRelease{}, errors.Join(ErrReleaseRefused, err)
		}
		return AppRelease{}, err
	}
	head, err := v.Head.MarshalBinary()
	if err != nil {
		return AppRelease{}, fmt.Errorf("%w: %w", ErrReleaseRefused, err)
	}
	return AppRelease{Version: v.Version, LogIndex: v.LogIndex, LoggedAt: int64(v.LoggedAt), TreeSize: v.TreeSize, TreeHead: head}, nil
}

// LogHeadSize is the size of the tree head of the network's transparency
// log the activated device verified last (0 before any, or when not
// activated): the web app asks for release proofs from it.
func (c *Client) LogHeadSize() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.monitor == nil {
		return 0
	}
	return c.monitor.Head().Size
}

// CheckAppRelease is VerifyAppReleaseSeen for the activated device: its
// network's root, and the tree head it verified last (its log monitor's,
// kept in its encrypted state). A proof at a larger head, consistent with
// the device's, advances the device's view of the log to it (the entries
// between are scanned at the next Sync), so that a later proof must be
// consistent with that one too.
func (c *Client) CheckAppRelease(manifest, proof []byte) (AppRelease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return AppRelease{}, ErrWiped
	}
	if c.dev == nil || c.monitor == nil {
		return AppRelease{}, ErrNotActivated
	}
	seen := c.monitor.Head()
	r, err := verifyAppRelease(ed25519.PublicKey(c.dev.net.Root), manifest, proof, seen)
	if err != nil {
		return AppRelease{}, err
	}
	if r.TreeSize <= seen.Size {
		return r, nil
	}
	p, err := webrelease.ParseProof(proof)
	if err != nil {
		return AppRelease{}, err
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(p.TreeHead); err != nil {
		return AppRelease{}, fmt.Errorf("%w: tree head: %w", ErrReleaseRefused, err)
	}
	cp := translog.ConsistencyProof{Size1: seen.Size, Size2: sth.Size}
	if len(p.Consistency) > 0 {
		if err := cp.UnmarshalBinary(p.Consistency); err != nil {
			return AppRelease{}, fmt.Errorf("%w: consistency proof: %w", ErrReleaseRefused, err)
		}
	}
	if err := c.monitor.Update(sth, cp); err != nil {
		return AppRelease{}, fmt.Errorf("%w: %w: %w", ErrReleaseRefused, ErrReleaseLogForked, err)
	}
	return r, c.saveMonitor()
}
