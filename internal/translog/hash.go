// Package translog is anom's transparency log: an append-only Merkle log in
// the style of RFC 9162 (Certificate Transparency v2). Every device
// certificate, revocation, device approval and escrow-policy version is
// appended to it. The server keeps a Log and signs tree heads; clients verify
// inclusion proofs for peer devices and watch their own username with a
// Monitor.
//
// Hashing follows RFC 9162 section 2.1.1 with SHA-256: a leaf hash is
// SHA-256(0x00 || entry) and an interior node is SHA-256(0x01 || left ||
// right). The package does no I/O of its own: entries are persisted through
// the Storage interface that the caller supplies.
package translog

import (
	"crypto/sha256"
	"encoding/hex"
	"math/bits"
)

// HashSize is the size in bytes of every hash in the log (SHA-256).
const HashSize = sha256.Size

// Hash is a SHA-256 node or leaf hash.
type Hash [HashSize]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// EmptyRoot is the Merkle tree hash of the empty tree: SHA-256 of the empty
// string (RFC 9162 section 2.1.1).
var EmptyRoot = Hash(sha256.Sum256(nil))

// HashLeaf returns the RFC 9162 leaf hash SHA-256(0x00 || entry) of the
// encoded entry bytes.
func HashLeaf(entry []byte) Hash {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(entry)
	var out Hash
	h.Sum(out[:0])
	return out
}

// HashChildren returns the RFC 9162 interior node hash
// SHA-256(0x01 || left || right).
func HashChildren(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = nodePrefix
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// MerkleTreeHash returns MTH(D[n]) for the given encoded entries, for any
// number of entries including zero. It runs in O(n) time and O(log n) space.
func MerkleTreeHash(entries [][]byte) Hash {
	var f frontier
	for _, e := range entries {
		f.push(HashLeaf(e))
	}
	return f.root()
}

// RootFromLeafHashes returns the Merkle tree hash of a tree whose leaf hashes
// are given, in O(n) time.
func RootFromLeafHashes(leaves []Hash) Hash {
	var f frontier
	for _, l := range leaves {
		f.push(l)
	}
	return f.root()
}

// InclusionPaths returns the Merkle tree hash of a tree whose leaf hashes
// are given, and the RFC 9162 inclusion proof of every leaf in it (paths[i]
// for leaf i, ordered from the leaf upwards, as VerifyInclusion takes it),
// in O(n log n) time. It is for small trees held in memory, such as a batch
// signed under one signature; leaves must not be empty.
func InclusionPaths(leaves []Hash) (root Hash, paths [][]Hash) {
	paths = make([][]Hash, len(leaves))
	return inclusionPaths(leaves, paths), paths
}

// inclusionPaths returns MTH(leaves) and appends to paths[i] the hashes of
// PATH(i, leaves) (RFC 9162 section 2.1.3.1) from this subtree upwards.
func inclusionPaths(leaves []Hash, paths [][]Hash) Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := largestPowerOfTwoBelow(uint64(len(leaves)))
	left := inclusionPaths(leaves[:k], paths[:k])
	right := inclusionPaths(leaves[k:], paths[k:])
	for i := range paths[:k] {
		paths[i] = append(paths[i], right)
	}
	for i := range paths[k:] {
		paths[k+uint64(i)] = append(paths[k+uint64(i)], left)
	}
	return HashChildren(left, right)
}

// frontier is the compact form of a tree of size n: the roots of the complete
// subtrees of the binary decomposition of n, largest (leftmost) first. It
// has one hash per set bit of n. Appending a leaf merges equal-sized subtrees
// from the right, exactly as the RFC 9162 tree shape requires, and folding
// the hashes right to left gives MTH(D[n]).
type frontier struct {
	size   uint64
	hashes []Hash
}

// push appends one leaf hash.
func (f *frontier) push(leaf Hash) {
	h := leaf
	// Every trailing one bit of the old size is a complete subtree that the
	// new leaf completes into one of twice the size.
	for merges := bits.TrailingZeros64(^f.size); merges > 0; merges-- {
		last := len(f.hashes) - 1
		h = HashChildren(f.hashes[last], h)
		f.hashes = f.hashes[:last]
	}
	f.hashes = append(f.hashes, h)
	f.size++
}

// root folds the frontier into the Merkle tree hash.
func (f *frontier) root() Hash {
	return foldFrontier(f.hashes)
}

// foldFrontier folds complete-subtree roots (largest first) into a tree hash.
func foldFrontier(hashes []Hash) Hash {
	if len(hashes) == 0 {
		return EmptyRoot
	}
	r := hashes[len(hashes)-1]
	for i := len(hashes) - 2; i >= 0; i-- {
		r = HashChildren(hashes[i], r)
	}
	return r
}

// clone returns an independent copy.
func (f *frontier) clone() frontier {
	return frontier{size: f.size, hashes: append([]Hash(nil), f.hashes...)}
}

// largestPowerOfTwoBelow returns the largest power of two strictly smaller
// than n, the split point k of RFC 9162 section 2.1.1. n must be at least 2.
func largestPowerOfTwoBelow(n uint64) uint64 {
	return uint64(1) << (bits.Len64(n-1) - 1)
}
