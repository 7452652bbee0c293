// Package webrelease is the web app's release manifest (release.json) and
// the proof that a release is in the network's transparency log
// (release-proof.json), with the one check of both: Verify. The server
// makes them (internal/webapp, internal/server); the client library
// checks them (client.VerifyAppRelease), compiled to WebAssembly for the
// page, so the browser runs the same tested Go code.
package webrelease

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/translog"
)

// Paths where the app serves the manifest and the proof.
const (
	ManifestPath = "/release.json"
	ProofPath    = "/release-proof.json"
)

// MaxManifestSize and MaxProofSize bound what Verify decodes.
const (
	MaxManifestSize = 1 << 20
	MaxProofSize    = 64 << 10
)

// Errors of Verify; every failure matches ErrRefused.
var (
	// ErrRefused: the release is not shown to be in the network's log.
	ErrRefused = errors.New("web release refused")
	// ErrBadManifest: the manifest does not parse, or its version is not
	// the digest of its files.
	ErrBadManifest = fmt.Errorf("%w: bad manifest", ErrRefused)
	// ErrBadProof: the proof does not parse.
	ErrBadProof = fmt.Errorf("%w: bad proof", ErrRefused)
	// ErrTreeHead: the proof's tree head is not signed by a directory key
	// of the network's root.
	ErrTreeHead = fmt.Errorf("%w: tree head not of this network", ErrRefused)
	// ErrNotLogged: the log entry proven is not this release, or the
	// inclusion proof does not hold.
	ErrNotLogged = fmt.Errorf("%w: not in the transparency log", ErrRefused)
)

// Manifest is release.json: every file's SHA-256 (lower-case hex) by URL
// path, and the release's version, the hex of identity.WebReleaseDigest
// of the files.
type Manifest struct {
	Version string            `json:"version"`
	Files   map[string]string `json:"files"`
}

// NewManifest returns the manifest of files, its version computed.
func NewManifest(files map[string]string) (Manifest, error) {
	d, err := identity.WebReleaseDigest(files)
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Version: hex.EncodeToString(d[:]), Files: files}, nil
}

// Digest checks that the manifest's version is the digest of its files
// and returns it.
func (m Manifest) Digest() ([32]byte, error) {
	d, err := identity.WebReleaseDigest(m.Files)
	if err != nil {
		return d, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if m.Version != hex.EncodeToString(d[:]) {
		return d, fmt.Errorf("%w: version %.16s… is not the digest of its files %x…", ErrBadManifest, m.Version, d[:8])
	}
	return d, nil
}

// Proof is release-proof.json: the log entry of a release, its inclusion
// proof in the tree of a signed tree head, and the network's root key
// (which the app takes on first use only: it pins the device's network,
// web/README.md). Binary fields are the translog encodings.
type Proof struct {
	Version        string `json:"version"`
	LogIndex       uint64 `json:"logIndex"`
	Entry          []byte `json:"entry"`
	InclusionProof []byte `json:"inclusionProof"`
	TreeHead       []byte `json:"treeHead"`
	Root           string `json:"root"`
}

// Verified is what Verify shows of a release.
type Verified struct {
	Version  string // the manifest's version
	LogIndex uint64 // its entry in the log
	LoggedAt uint64 // the entry's time, milliseconds since the Unix epoch
	TreeSize uint64 // the size of the tree head it was proven in
	HeadTime uint64 // that head's time, milliseconds since the Unix epoch
}

func decodeStrict(b []byte, max int, v any) error {
	if len(b) > max {
		return fmt.Errorf("%d bytes, limit %d", len(b), max)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// ParseManifest strictly decodes release.json.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := decodeStrict(b, MaxManifestSize, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	return m, nil
}

// ParseProof strictly decodes release-proof.json.
func ParseProof(b []byte) (Proof, error) {
	var p Proof
	if err := decodeStrict(b, MaxProofSize, &p); err != nil {
		return Proof{}, fmt.Errorf("%w: %w", ErrBadProof, err)
	}
	return p, nil
}

// Verify checks that the release of manifest (release.json) is in the
// transparency log of the network of root, by proof (release-proof.json):
// the manifest's version is the digest of its files; the proof's tree
// head carries a directory key certificate logged in its own tree that
// chains to root, and is signed by that key (identity.VerifyTreeHead);
// the inclusion proof puts the proof's entry at its index in that tree;
// the entry is a web release of exactly this digest. The root the proof
// names is not used. Every failure matches ErrRefused.
func Verify(root ed25519.PublicKey, manifest, proof []byte) (Verified, error) {
	if len(root) != ed25519.PublicKeySize {
		return Verified{}, fmt.Errorf("%w: root key of %d bytes", ErrRefused, len(root))
	}
	m, err := ParseManifest(manifest)
	if err != nil {
		return Verified{}, err
	}
	digest, err := m.Digest()
	if err != nil {
		return Verified{}, err
	}
	p, err := ParseProof(proof)
	if err != nil {
		return Verified{}, err
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(p.TreeHead); err != nil {
		return Verified{}, fmt.Errorf("%w: tree head: %w", ErrBadProof, err)
	}
	if _, err := identity.VerifyTreeHead(identity.RootPublicKey(root), sth, translog.SignedTreeHead{}); err != nil {
		return Verified{}, fmt.Errorf("%w: %w", ErrTreeHead, err)
	}
	var ip translog.InclusionProof
	if err := ip.UnmarshalBinary(p.InclusionProof); err != nil {
		return Verified{}, fmt.Errorf("%w: inclusion proof: %w", ErrBadProof, err)
	}
	if ip.Index != p.LogIndex || ip.TreeSize != sth.Size {
		return Verified{}, fmt.Errorf("%w: inclusion proof of entry %d in a tree of %d, not entry %d in the head's %d",
			ErrNotLogged, ip.Index, ip.TreeSize, p.LogIndex, sth.Size)
	}
	if err := ip.Verify(translog.HashLeaf(p.Entry), sth.Root); err != nil {
		return Verified{}, fmt.Errorf("%w: entry %d: %w", ErrNotLogged, p.LogIndex, err)
	}
	e, err := translog.DecodeEntry(p.Entry)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: entry %d: %w", ErrNotLogged, p.LogIndex, err)
	}
	r, err := identity.WebReleaseOfEntry(e)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: entry %d: %w", ErrNotLogged, p.LogIndex, err)
	}
	if r.Digest != digest {
		return Verified{}, fmt.Errorf("%w: entry %d logs release %x…, the manifest is %x…", ErrNotLogged, p.LogIndex, r.Digest[:8], digest[:8])
	}
	return Verified{Version: m.Version, LogIndex: p.LogIndex, LoggedAt: e.Timestamp, TreeSize: sth.Size, HeadTime: sth.Timestamp}, nil
}

// NewProof makes release-proof.json for the release of version logged
// at index of l: the entry, its inclusion proof in the tree of a tree
// head l signs now, and root (hex).
func NewProof(ctx context.Context, l *translog.Log, version string, index uint64, root ed25519.PublicKey) ([]byte, error) {
	sth, err := l.SignedTreeHead()
	if err != nil {
		return nil, fmt.Errorf("proving web release: %w", err)
	}
	head, err := sth.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("proving web release: %w", err)
	}
	ip, err := l.InclusionProof(index, sth.Size)
	if err != nil {
		return nil, fmt.Errorf("proving web release: %w", err)
	}
	ipb, err := ip.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("proving web release: %w", err)
	}
	raw, err := l.Entries(ctx, index, index+1)
	if err != nil {
		return nil, fmt.Errorf("proving web release: reading entry %d: %w", index, err)
	}
	return json.Marshal(Proof{Version: version, LogIndex: index, Entry: raw[0], InclusionProof: ipb, TreeHead: head, Root: hex.EncodeToString(root)})
}
