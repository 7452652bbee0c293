package client

import (
	"crypto/ed25519"
	"errors"

	"anom/internal/webrelease"
)

// ErrReleaseRefused is matched (errors.Is) by every failure of
// VerifyAppRelease: the web app's release is not shown to be in the
// network's transparency log.
var ErrReleaseRefused = webrelease.ErrRefused

// AppRelease is a release of the web app shown to be in the network's
// transparency log.
type AppRelease struct {
	Version  string // the release's version: the hex of its manifest's digest
	LogIndex uint64 // the log entry of the release
	LoggedAt int64  // when the server logged it, milliseconds since the Unix epoch
	TreeSize uint64 // the size of the signed tree head it was proven in
}

// VerifyAppRelease checks a release of the web app against the network of
// root: manifest is its release.json (every file's SHA-256 and the
// version, the digest of them), proof its release-proof.json (the log
// entry, its inclusion proof and a signed tree head). The tree head must
// be signed by a directory key whose certificate, logged in that tree,
// chains to root; the entry must be in that tree at its index and log
// exactly the manifest's digest. The proof's own root field is ignored.
// It uses no connection and no device: the web app's service worker
// takes an update only when this holds (web/README.md).
func VerifyAppRelease(root ed25519.PublicKey, manifest, proof []byte) (AppRelease, error) {
	v, err := webrelease.Verify(root, manifest, proof)
	if err != nil {
		if !errors.Is(err, ErrReleaseRefused) {
			return AppRelease{}, errors.Join(ErrReleaseRefused, err)
		}
		return AppRelease{}, err
	}
	return AppRelease{Version: v.Version, LogIndex: v.LogIndex, LoggedAt: int64(v.LoggedAt), TreeSize: v.TreeSize}, nil
}
