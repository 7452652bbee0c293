package translog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxProofHashes bounds the hashes in an encoded proof. A tree of at most
// 2^64-1 leaves has depth at most 64, so an inclusion proof has at most 64
// hashes and a consistency proof at most 65.
const MaxProofHashes = 65

// ErrBadProofEncoding is matched by every proof decoding error.
var ErrBadProofEncoding = errors.New("translog: bad proof encoding")

// InclusionProof proves that the leaf at Index is in the tree of size
// TreeSize (RFC 9162 section 2.1.3). Path is ordered from the leaf upwards.
//
// Encoding, big-endian:
//
//	index     uint64
//	tree size uint64  (index < tree size)
//	count     uint8   (at most MaxProofHashes)
//	path      [count][32]byte
type InclusionProof struct {
	Index    uint64
	TreeSize uint64
	Path     []Hash
}

// Verify checks the proof for leafHash against root.
func (p InclusionProof) Verify(leafHash, root Hash) error {
	return VerifyInclusion(leafHash, p.Index, p.TreeSize, p.Path, root)
}

// MarshalBinary encodes the proof.
func (p InclusionProof) MarshalBinary() ([]byte, error) {
	if p.Index >= p.TreeSize {
		return nil, fmt.Errorf("encoding inclusion proof: %w: index %d, tree size %d", ErrBadProofEncoding, p.Index, p.TreeSize)
	}
	return appendProof(nil, p.Index, p.TreeSize, p.Path, "inclusion")
}

// UnmarshalBinary strictly decodes an inclusion proof. It checks the
// structure, not the hashes; call Verify.
func (p *InclusionProof) UnmarshalBinary(b []byte) error {
	a, c, path, err := decodeProof(b, "inclusion")
	if err != nil {
		return err
	}
	if a >= c {
		return fmt.Errorf("decoding inclusion proof: %w: index %d, tree size %d", ErrBadProofEncoding, a, c)
	}
	*p = InclusionProof{Index: a, TreeSize: c, Path: path}
	return nil
}

// ConsistencyProof proves that the tree of size Size1 is a prefix of the
// tree of size Size2 (RFC 9162 section 2.1.4).
//
// Encoding, big-endian:
//
//	size1 uint64
//	size2 uint64  (size1 <= size2)
//	count uint8   (at most MaxProofHashes)
//	path  [count][32]byte
type ConsistencyProof struct {
	Size1, Size2 uint64
	Path         []Hash
}

// Verify checks the proof between root1 (of Size1) and root2 (of Size2).
func (p ConsistencyProof) Verify(root1, root2 Hash) error {
	return VerifyConsistency(p.Size1, p.Size2, root1, root2, p.Path)
}

// MarshalBinary encodes the proof.
func (p ConsistencyProof) MarshalBinary() ([]byte, error) {
	if p.Size1 > p.Size2 {
		return nil, fmt.Errorf("encoding consistency proof: %w: size1 %d > size2 %d", ErrBadProofEncoding, p.Size1, p.Size2)
	}
	return appendProof(nil, p.Size1, p.Size2, p.Path, "consistency")
}

// UnmarshalBinary strictly decodes a consistency proof. It checks the
// structure, not the hashes; call Verify.
func (p *ConsistencyProof) UnmarshalBinary(b []byte) error {
	a, c, path, err := decodeProof(b, "consistency")
	if err != nil {
		return err
	}
	if a > c {
		return fmt.Errorf("decoding consistency proof: %w: size1 %d > size2 %d", ErrBadProofEncoding, a, c)
	}
	*p = ConsistencyProof{Size1: a, Size2: c, Path: path}
	return nil
}

const proofHeaderSize = 8 + 8 + 1

func appendProof(b []byte, a, c uint64, path []Hash, what string) ([]byte, error) {
	if len(path) > MaxProofHashes {
		return nil, fmt.Errorf("encoding %s proof: %w: %d hashes", what, ErrBadProofEncoding, len(path))
	}
	b = binary.BigEndian.AppendUint64(b, a)
	b = binary.BigEndian.AppendUint64(b, c)
	b = append(b, byte(len(path)))
	for _, h := range path {
		b = append(b, h[:]...)
	}
	return b, nil
}

func decodeProof(b []byte, what string) (a, c uint64, path []Hash, err error) {
	if len(b) < proofHeaderSize {
		return 0, 0, nil, fmt.Errorf("decoding %s proof: %w: %d bytes", what, ErrBadProofEncoding, len(b))
	}
	a = binary.BigEndian.Uint64(b)
	c = binary.BigEndian.Uint64(b[8:])
	n := int(b[16])
	if n > MaxProofHashes {
		return 0, 0, nil, fmt.Errorf("decoding %s proof: %w: %d hashes", what, ErrBadProofEncoding, n)
	}
	rest := b[proofHeaderSize:]
	if len(rest) != n*HashSize {
		return 0, 0, nil, fmt.Errorf("decoding %s proof: %w: %d bytes for %d hashes", what, ErrBadProofEncoding, len(rest), n)
	}
	path = make([]Hash, n)
	for i := range path {
		copy(path[i][:], rest[i*HashSize:])
	}
	return a, c, path, nil
}
