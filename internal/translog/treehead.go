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
	// TreeHeadVersion is the only signed tree head encoding version.
	TreeHeadVersion = 1

	treeHeadBodySize = 8 + 8 + HashSize // size, timestamp, root
	// SignedTreeHeadSize is the exact size of an encoded SignedTreeHead.
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

// SignedTreeHead is a tree head with the log key's Ed25519 signature.
//
// Encoding (SignedTreeHeadSize bytes, big-endian):
//
//	version   uint8 = 1
//	size      uint64
//	timestamp uint64
//	root      [32]byte
//	signature [64]byte  Ed25519 over treeHeadLabel || size || timestamp || root
type SignedTreeHead struct {
	TreeHead
	Signature []byte
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

// MarshalBinary encodes the signed tree head. It fails only if the
// signature has the wrong length.
func (s SignedTreeHead) MarshalBinary() ([]byte, error) {
	if len(s.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encoding tree head: %w: signature is %d bytes", ErrBadTreeHead, len(s.Signature))
	}
	b := make([]byte, 0, SignedTreeHeadSize)
	b = append(b, TreeHeadVersion)
	b = s.appendBody(b)
	return append(b, s.Signature...), nil
}

// UnmarshalBinary strictly decodes a signed tree head: exactly
// SignedTreeHeadSize bytes and a known version. It does not check the
// signature; call Verify.
func (s *SignedTreeHead) UnmarshalBinary(b []byte) error {
	if len(b) != SignedTreeHeadSize {
		return fmt.Errorf("decoding tree head: %w: %d bytes, want %d", ErrBadTreeHead, len(b), SignedTreeHeadSize)
	}
	if b[0] != TreeHeadVersion {
		return fmt.Errorf("decoding tree head: %w: version %d", ErrBadTreeHead, b[0])
	}
	b = b[1:]
	var h TreeHead
	h.Size = binary.BigEndian.Uint64(b)
	h.Timestamp = binary.BigEndian.Uint64(b[8:])
	copy(h.Root[:], b[16:16+HashSize])
	*s = SignedTreeHead{
		TreeHead:  h,
		Signature: append([]byte(nil), b[treeHeadBodySize:]...),
	}
	return nil
}
