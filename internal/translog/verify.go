package translog

import (
	"crypto/subtle"
	"errors"
	"fmt"
)

// ErrInvalidProof is matched (errors.Is) by every proof verification failure.
// The more specific errors below all wrap it.
var ErrInvalidProof = errors.New("translog: invalid proof")

var (
	// ErrIndexOutOfRange: the leaf index is not below the tree size.
	ErrIndexOutOfRange = fmt.Errorf("%w: leaf index not below tree size", ErrInvalidProof)
	// ErrSizeOrder: a consistency proof from a larger to a smaller tree.
	ErrSizeOrder = fmt.Errorf("%w: first tree larger than second", ErrInvalidProof)
	// ErrProofTooLong: the proof has more hashes than the tree shape allows.
	ErrProofTooLong = fmt.Errorf("%w: too many hashes", ErrInvalidProof)
	// ErrProofTooShort: the proof has fewer hashes than the tree shape needs.
	ErrProofTooShort = fmt.Errorf("%w: too few hashes", ErrInvalidProof)
	// ErrRootMismatch: the proof does not lead to the expected root hash.
	ErrRootMismatch = fmt.Errorf("%w: root hash mismatch", ErrInvalidProof)
)

// equalHash compares two hashes in constant time.
func equalHash(a, b Hash) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// VerifyInclusion checks that leafHash is the leaf at index in the tree of
// size treeSize whose root is root, using the algorithm of RFC 9162 section
// 2.1.3.2. It returns nil or an error matching ErrInvalidProof.
func VerifyInclusion(leafHash Hash, index, treeSize uint64, proof []Hash, root Hash) error {
	r, err := rootFromInclusion(leafHash, index, treeSize, proof)
	if err != nil {
		return err
	}
	if !equalHash(r, root) {
		return ErrRootMismatch
	}
	return nil
}

// RootFromInclusion returns the root of the tree of size treeSize in which
// leafHash is the leaf at index with the given inclusion proof (steps 1 to 4
// of RFC 9162 section 2.1.3.2 and the sn == 0 check of step 5). The caller
// trusts the result only once it has checked the root, for example by a
// signature over it. Errors match ErrInvalidProof.
func RootFromInclusion(leafHash Hash, index, treeSize uint64, proof []Hash) (Hash, error) {
	return rootFromInclusion(leafHash, index, treeSize, proof)
}

// rootFromInclusion runs steps 1 to 4 of RFC 9162 section 2.1.3.2 and the
// sn == 0 check of step 5, returning the computed root.
func rootFromInclusion(leafHash Hash, index, treeSize uint64, proof []Hash) (Hash, error) {
	// Step 1.
	if index >= treeSize {
		return Hash{}, ErrIndexOutOfRange
	}
	// Steps 2 and 3.
	fn, sn := index, treeSize-1
	r := leafHash
	// Step 4.
	for _, p := range proof {
		if sn == 0 { // 4a
			return Hash{}, ErrProofTooLong
		}
		if fn&1 == 1 || fn == sn { // 4b
			r = HashChildren(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = HashChildren(r, p)
		}
		fn >>= 1 // 4c
		sn >>= 1
	}
	// Step 5, first half.
	if sn != 0 {
		return Hash{}, ErrProofTooShort
	}
	return r, nil
}

// VerifyConsistency checks that the tree of size size1 with root root1 is a
// prefix of the tree of size size2 with root root2, using the algorithm of
// RFC 9162 section 2.1.4.2. It returns nil or an error matching
// ErrInvalidProof.
//
// RFC 9162 defines consistency proofs for 0 < size1 < size2. The two edge
// cases are handled as follows: when size1 == size2 the proof must be empty
// and the roots equal; when size1 == 0 the proof must be empty and root1 must
// be EmptyRoot (the empty tree is a prefix of every tree).
func VerifyConsistency(size1, size2 uint64, root1, root2 Hash, proof []Hash) error {
	switch {
	case size1 > size2:
		return ErrSizeOrder
	case size1 == size2:
		if len(proof) != 0 {
			return ErrProofTooLong
		}
		if !equalHash(root1, root2) {
			return ErrRootMismatch
		}
		return nil
	case size1 == 0:
		if len(proof) != 0 {
			return ErrProofTooLong
		}
		if !equalHash(root1, EmptyRoot) {
			return ErrRootMismatch
		}
		return nil
	}

	// Step 1.
	if len(proof) == 0 {
		return ErrProofTooShort
	}
	// Step 2: a power-of-two first tree is itself a node of the second, so
	// its root is the starting point of the path.
	path := proof
	if size1&(size1-1) == 0 {
		path = make([]Hash, 0, len(proof)+1)
		path = append(path, root1)
		path = append(path, proof...)
	}
	// Step 3.
	fn, sn := size1-1, size2-1
	// Step 4.
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	// Step 5.
	fr, sr := path[0], path[0]
	// Step 6.
	for _, c := range path[1:] {
		if sn == 0 { // 6a
			return ErrProofTooLong
		}
		if fn&1 == 1 || fn == sn { // 6b
			fr = HashChildren(c, fr)
			sr = HashChildren(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = HashChildren(sr, c)
		}
		fn >>= 1 // 6c
		sn >>= 1
	}
	// Step 7.
	if sn != 0 {
		return ErrProofTooShort
	}
	if !equalHash(fr, root1) || !equalHash(sr, root2) {
		return ErrRootMismatch
	}
	return nil
}
