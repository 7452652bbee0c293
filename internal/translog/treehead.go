package translog

import (
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// treeHeadLabel separates tree-head signatures from everything else the same
// key signs (the network root key also signs device certificates and
// policies). It includes a zero byte so no other label can be a prefix.
const treeHeadLabel = "anom translog tree head v1\x00"

const (
	// TreeHeadVersion is the encoding version of a bare signed tree head.
	TreeHeadVersion = 1
	// TreeHeadSignerVersion is the encoding version of a signed tree head
	// that carries its HeadSigner.
	TreeHeadSignerVersion = 2
	// MaxSignerEntrySize bounds HeadSigner.Entry: an online key
	// certificate is about 200 bytes.
	MaxSignerEntrySize = 1024
	// MaxSignedTreeHeadSize bounds an encoded SignedTreeHead of either
	// version.
	MaxSignedTreeHeadSize = SignedTreeHeadSize + 2 + MaxSignerEntrySize + 2 + 8 + 8 + 1 + MaxProofHashes*HashSize

	treeHeadBodySize = 8 + 8 + HashSize // size, timestamp, root
	// SignedTreeHeadSize is the exact size of a bare (version 1) encoded
	// SignedTreeHead.
	SignedTreeHeadSize = 1 + treeHeadBodySize + ed25519.SignatureSize
)

// Errors about tree heads.
var (
	// ErrBadTreeHead is matched by every tree head decoding error.
	ErrBadTreeHead = errors.New("translog: bad tree head")
	// ErrBadSignature: the tree head signature does not verify.
	ErrBadSignature = errors.New("translog: bad tree head signature")
	// ErrNotEd25519: the signer or public key is not an Ed25519 key.
	ErrNotEd25519 = errors.New("translog: key is not Ed25519")
)

// TreeHead is the state of the log at one size.
type TreeHead struct {
	Size      uint64
	Timestamp uint64 // milliseconds since the Unix epoch, when the head was signed
	Root      Hash
}

// Time returns the head's timestamp as a time.Time.
func (h TreeHead) Time() time.Time { return time.UnixMilli(int64(h.Timestamp)) }

// signedMessage is what the log key signs: the label followed by size,
// timestamp (big-endian uint64s) and root.
func (h TreeHead) signedMessage() []byte {
	b := make([]byte, 0, len(treeHeadLabel)+treeHeadBodySize)
	b = append(b, treeHeadLabel...)
	return h.appendBody(b)
}

func (h TreeHead) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, h.Size)
	b = binary.BigEndian.AppendUint64(b, h.Timestamp)
	return append(b, h.Root[:]...)
}

// SignedTreeHead is a tree head with the log key's Ed25519 signature and,
// optionally, the log entry that certifies that key.
//
// Encoding, big-endian:
//
//	version   uint8 = 1 (no signer) or 2 (with signer)
//	size      uint64
//	timestamp uint64
//	root      [32]byte
//	signature [64]byte  Ed25519 over treeHeadLabel || size || timestamp || root
//
// and for version 2:
//
//	entry     uint16 length, 1..MaxSignerEntrySize bytes: HeadSigner.Entry
//	proof     uint16 length: HeadSigner.Proof (InclusionProof encoding)
type SignedTreeHead struct {
	TreeHead
	Signature []byte
	// Signer, if set, is the certificate of the signing key as a log
	// entry, with its inclusion proof in this very tree. It is not covered
	// by the signature: whoever checks it checks that the entry certifies
	// the key the signature verifies with.
	Signer *HeadSigner
}

// HeadSigner is the log entry that certifies the key a tree head is signed
// with (for anom, the root's certificate of the directory key) and the
// proof that the entry is in the tree the head commits to. A head that
// carries one shows that the key signing it was logged.
type HeadSigner struct {
	Entry []byte         // an encoded Entry
	Proof InclusionProof // of Entry, with TreeSize equal to the head's size
}

// ErrNoHeadSigner: the tree head carries no HeadSigner.
var ErrNoHeadSigner = errors.New("translog: tree head carries no signer entry")

// SignerEntry checks that the head's HeadSigner entry is in the head's
// tree and returns it decoded. It does not check the signature; the caller
// checks that the entry certifies the key the head verifies with.
func (s SignedTreeHead) SignerEntry() (Entry, error) {
	if s.Signer == nil {
		return Entry{}, fmt.Errorf("verifying tree head signer: %w", ErrNoHeadSigner)
	}
	p := s.Signer.Proof
	if p.TreeSize != s.Size {
		return Entry{}, fmt.Errorf("verifying tree head signer: %w: proof for size %d, head has %d", ErrInvalidProof, p.TreeSize, s.Size)
	}
	if err := VerifyInclusion(HashLeaf(s.Signer.Entry), p.Index, p.TreeSize, p.Path, s.Root); err != nil {
		return Entry{}, fmt.Errorf("verifying tree head signer entry %d: %w", p.Index, err)
	}
	e, err := DecodeEntry(s.Signer.Entry)
	if err != nil {
		return Entry{}, fmt.Errorf("verifying tree head signer: %w", err)
	}
	return e, nil
}

// SignTreeHead signs h with signer, whose public key must be Ed25519 (an
// ed25519.PrivateKey or a crypto.Signer holding one elsewhere). rand is
// passed to the signer; Ed25519 itself does not read it.
func SignTreeHead(signer crypto.Signer, rand io.Reader, h TreeHead) (SignedTreeHead, error) {
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok {
		return SignedTreeHead{}, fmt.Errorf("signing tree head: %w", ErrNotEd25519)
	}
	sig, err := signer.Sign(rand, h.signedMessage(), crypto.Hash(0))
	if err != nil {
		return SignedTreeHead{}, fmt.Errorf("signing tree head: %w", err)
	}
	sth := SignedTreeHead{TreeHead: h, Signature: sig}
	// A remote signer could return garbage; never hand out a head that does
	// not verify.
	if err := sth.Verify(pub); err != nil {
		return SignedTreeHead{}, fmt.Errorf("signing tree head: signer output: %w", err)
	}
	return sth, nil
}

// Verify checks the signature with the log's public key.
func (s SignedTreeHead) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verifying tree head: %w: public key is %d bytes", ErrNotEd25519, len(pub))
	}
	if len(s.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, s.signedMessage(), s.Signature) {
		return fmt.Errorf("verifying tree head of size %d: %w", s.Size, ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes the signed tree head: version 1 without a
// signer, 2 with one. It fails if the signature has the wrong length or
// the signer does not fit.
func (s SignedTreeHead) MarshalBinary() ([]byte, error) {
	if len(s.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encoding tree head: %w: signature is %d bytes", ErrBadTreeHead, len(s.Signature))
	}
	b := make([]byte, 0, SignedTreeHeadSize)
	b = append(b, TreeHeadVersion)
	b = s.appendBody(b)
	b = append(b, s.Signature...)
	if s.Signer == nil {
		return b, nil
	}
	b[0] = TreeHeadSignerVersion
	if n := len(s.Signer.Entry); n == 0 || n > MaxSignerEntrySize {
		return nil, fmt.Errorf("encoding tree head: %w: signer entry is %d bytes, want 1..%d", ErrBadTreeHead, n, MaxSignerEntrySize)
	}
	pb, err := s.Signer.Proof.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding tree head: %w: %w", ErrBadTreeHead, err)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Signer.Entry)))
	b = append(b, s.Signer.Entry...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pb)))
	return append(b, pb...), nil
}

// UnmarshalBinary strictly decodes a signed tree head: a known version,
// exactly SignedTreeHeadSize bytes for version 1, a well-formed signer and
// nothing after it for version 2. It does not check the signature or the
// signer; call Verify and SignerEntry.
func (s *SignedTreeHead) UnmarshalBinary(b []byte) error {
	if len(b) < SignedTreeHeadSize {
		return fmt.Errorf("decoding tree head: %w: %d bytes, want at least %d", ErrBadTreeHead, len(b), SignedTreeHeadSize)
	}
	version := b[0]
	switch {
	case version == TreeHeadVersion && len(b) != SignedTreeHeadSize:
		return fmt.Errorf("decoding tree head: %w: %d bytes, want %d", ErrBadTreeHead, len(b), SignedTreeHeadSize)
	case version != TreeHeadVersion && version != TreeHeadSignerVersion:
		return fmt.Errorf("decoding tree head: %w: version %d", ErrBadTreeHead, version)
	}
	rest := b[SignedTreeHeadSize:]
	b = b[1:]
	var h TreeHead
	h.Size = binary.BigEndian.Uint64(b)
	h.Timestamp = binary.BigEndian.Uint64(b[8:])
	copy(h.Root[:], b[16:16+HashSize])
	out := SignedTreeHead{
		TreeHead:  h,
		Signature: append([]byte(nil), b[treeHeadBodySize:treeHeadBodySize+ed25519.SignatureSize]...),
	}
	if version == TreeHeadSignerVersion {
		entry, rest, ok := cut16(rest)
		if !ok || len(entry) == 0 || len(entry) > MaxSignerEntrySize {
			return fmt.Errorf("decoding tree head: %w: signer entry missing, truncated or over %d bytes", ErrBadTreeHead, MaxSignerEntrySize)
		}
		pb, rest, ok := cut16(rest)
		if !ok || len(rest) != 0 {
			return fmt.Errorf("decoding tree head: %w: signer proof truncated or trailing bytes", ErrBadTreeHead)
		}
		sg := &HeadSigner{Entry: append([]byte(nil), entry...)}
		if err := sg.Proof.UnmarshalBinary(pb); err != nil {
			return fmt.Errorf("decoding tree head: %w: %w", ErrBadTreeHead, err)
		}
		out.Signer = sg
	}
	*s = out
	return nil
}

// cut16 splits a uint16-length-prefixed field off b.
func cut16(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return nil, nil, false
	}
	return b[2 : 2+n], b[2+n:], true
}
