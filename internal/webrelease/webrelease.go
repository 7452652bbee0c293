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
	// ErrInconsistent: the proof's tree head is not shown to be
	// consistent with the tree head the device saw last (no consistency
	// proof between the two, or one that does not hold): the server may
	// be showing this device a fork of the log.
	ErrInconsistent = fmt.Errorf("%w: not consistent with the log the device saw", ErrRefused)
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
// proof in the tree of a signed tree head, the network's root key (which
// the app takes on first use only: it pins the device's network,
// web/README.md) and, when the device said which tree head it saw last
// (ProofPath?from=SIZE), a consistency proof from that size to the
// head's (RFC 9162). Binary fields are the translog encodings.
type Proof struct {
	Version        string `json:"version"`
	LogIndex       uint64 `json:"logIndex"`
	Entry          []byte `json:"entry"`
	InclusionProof []byte `json:"inclusionProof"`
	TreeHead       []byte `json:"treeHead"`
	Root           string `json:"root"`
	Consistency    []byte `json:"consistency,omitempty"`
}

// Verified is what Verify shows of a release.
type Verified struct {
	Version  string // the manifest's version
	LogIndex uint64 // its entry in the log
	LoggedAt uint64 // the entry's time, milliseconds since the Unix epoch
	TreeSize uint64 // the size of the tree head it was proven in
	HeadTime uint64 // that head's time, milliseconds since the Unix epoch
	// Head is that tree head, verified, and consistent with the head the
	// device saw (VerifySeen): the device's new view of the log when it
	// is the larger of the two.
	Head translog.SignedTreeHead
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
// transparency log of the network of root, by proof (release-proof.json),
// for a device that has seen no tree head of that log yet (first use):
// VerifySeen with none.
func Verify(root ed25519.PublicKey, manifest, proof []byte) (Verified, error) {
	return VerifySeen(root, manifest, proof, translog.SignedTreeHead{})
}

// VerifySeen checks that the release of manifest (release.json) is in the
// transparency log of the network of root, by proof (release-proof.json),
// and that the log is the one the device saw: the manifest's version is
// the digest of its files; the proof's tree head carries a directory key
// certificate logged in its own tree that chains to root, and is signed
// by that key (identity.VerifyTreeHead); the inclusion proof puts the
// proof's entry at its index in that tree; the entry is a web release of
// exactly this digest. When seen (the tree head the device verified last)
// is signed, it must verify under root too, and the proof's head must be
// consistent with it: of the same size, the same root; larger, the
// proof's consistency proof from seen's size must hold; smaller, its
// consistency proof to seen's size must show the proof's tree a prefix
// of seen's. Anything else is ErrInconsistent. The root the proof names
// is not used. Every failure matches ErrRefused.
func VerifySeen(root ed25519.PublicKey, manifest, proof []byte, seen translog.SignedTreeHead) (Verified, error) {
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
	if err := consistent(root, sth, seen, p.Consistency); err != nil {
		return Verified{}, err
	}
	return Verified{Version: m.Version, LogIndex: p.LogIndex, LoggedAt: e.Timestamp, TreeSize: sth.Size, HeadTime: sth.Timestamp, Head: sth}, nil
}

// consistent checks that sth, verified, is consistent with seen, the
// head the device saw last (none when unsigned), by proof (the proof's
// consistency field).
func consistent(root ed25519.PublicKey, sth, seen translog.SignedTreeHead, proof []byte) error {
	if seen.Signature == nil {
		return nil
	}
	if _, err := identity.VerifyTreeHead(identity.RootPublicKey(root), seen, translog.SignedTreeHead{}); err != nil {
		return fmt.Errorf("%w: the tree head the device saw is not of this network: %w", ErrInconsistent, err)
	}
	if sth.Size == seen.Size {
		if sth.Root != seen.Root {
			return fmt.Errorf("%w: two tree heads of size %d with different roots", ErrInconsistent, sth.Size)
		}
		return nil
	}
	if len(proof) == 0 {
		return fmt.Errorf("%w: a tree head of size %d and no consistency proof with the head of size %d the device saw",
			ErrInconsistent, sth.Size, seen.Size)
	}
	var cp translog.ConsistencyProof
	if err := cp.UnmarshalBinary(proof); err != nil {
		return fmt.Errorf("%w: consistency proof: %w", ErrBadProof, err)
	}
	old, cur := seen, sth
	if sth.Size < seen.Size {
		old, cur = sth, seen
	}
	if cp.Size1 != old.Size || cp.Size2 != cur.Size {
		return fmt.Errorf("%w: consistency proof from %d to %d, not from %d to %d", ErrInconsistent, cp.Size1, cp.Size2, old.Size, cur.Size)
	}
	if err := cp.Verify(old.Root, cur.Root); err != nil {
		return fmt.Errorf("%w: from size %d to %d: %w", ErrInconsistent, old.Size, cur.Size, err)
	}
	return nil
}

// NewProof makes release-proof.json for the release of version logged
// at index of l: the entry, its inclusion proof in the tree of a tree
// head l signs now, and root (hex); with from, the size of the tree head
// the device saw last, not 0 and not larger than the head's, also the
// consistency proof from that size to the head's. A larger from gets
// none: the device saw a larger tree than this log's, and refuses the
// proof.
func NewProof(ctx context.Context, l *translog.Log, version string, index uint64, root ed25519.PublicKey, from uint64) ([]byte, error) {
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
	p := Proof{Version: version, LogIndex: index, Entry: raw[0], InclusionProof: ipb, TreeHead: head, Root: hex.EncodeToString(root)}
	if from > 0 && from < sth.Size {
		cp, err := l.ConsistencyProof(from, sth.Size)
		if err != nil {
			return nil, fmt.Errorf("proving web release: %w", err)
		}
		if p.Consistency, err = cp.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("proving web release: %w", err)
		}
	}
	return json.Marshal(p)
}
