package translog

import (
	"math/bits"
	"slices"
)

// tree holds the hash of every complete subtree of an RFC 9162 Merkle tree
// (about two hashes per leaf), so that the root at any past size, inclusion
// proofs and consistency proofs need O(log n) lookups and at most O(log n)
// hashes. It is not safe for concurrent use; Log guards it.
type tree struct {
	// levels[l][i] is the root of the complete subtree over leaves
	// [i<<l, (i+1)<<l). levels[0] holds the leaf hashes.
	levels [][]Hash
}

func newTree() *tree { return &tree{levels: [][]Hash{nil}} }

func (t *tree) size() uint64 { return uint64(len(t.levels[0])) }

// addLeaf appends a leaf hash and every complete subtree it completes:
// amortised one interior hash per leaf.
func (t *tree) addLeaf(h Hash) {
	t.levels[0] = append(t.levels[0], h)
	i := uint64(len(t.levels[0]) - 1)
	for lvl := 0; i&1 == 1; lvl++ {
		if lvl+1 == len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		row := t.levels[lvl]
		h = HashChildren(row[i-1], row[i])
		t.levels[lvl+1] = append(t.levels[lvl+1], h)
		i >>= 1
	}
}

// completeSubtrees appends to dst the stored roots of the complete subtrees
// that make up [lo, hi), largest first. lo must be a multiple of the
// smallest power of two not below hi-lo, which holds for every node of an
// RFC 9162 tree and for [0, n); hi must not exceed the size.
func (t *tree) completeSubtrees(lo, hi uint64, dst []Hash) []Hash {
	for lo < hi {
		lvl := bits.Len64(hi-lo) - 1
		dst = append(dst, t.levels[lvl][lo>>lvl])
		lo += 1 << lvl
	}
	return dst
}

// subtreeHash returns MTH(D[lo:hi]) for a node [lo, hi) of an RFC 9162 tree
// (or for [0, n)) from at most log2(hi-lo)+1 stored subtree roots: the
// complete subtrees of the range are folded from the smallest, rightmost one
// leftwards.
func (t *tree) subtreeHash(lo, hi uint64) Hash {
	n := hi - lo
	if n == 0 {
		return EmptyRoot
	}
	lvl := bits.TrailingZeros64(n)
	end := hi - 1<<lvl
	r := t.levels[lvl][end>>lvl]
	for n &= n - 1; n != 0; n &= n - 1 {
		lvl = bits.TrailingZeros64(n)
		end -= 1 << lvl
		r = HashChildren(t.levels[lvl][end>>lvl], r)
	}
	return r
}

// inclusionPath returns PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1.
// The caller checks index < size <= t.size().
func (t *tree) inclusionPath(index, size uint64) []Hash {
	// Walk from the root down to the leaf; each step's sibling subtree is
	// one proof hash. The RFC lists them leaf first.
	path := make([]Hash, 0, bits.Len64(size))
	lo, hi := uint64(0), size
	for hi-lo > 1 {
		k := largestPowerOfTwoBelow(hi - lo)
		if index < lo+k {
			path = append(path, t.subtreeHash(lo+k, hi))
			hi = lo + k
		} else {
			path = append(path, t.subtreeHash(lo, lo+k))
			lo += k
		}
	}
	slices.Reverse(path)
	return path
}

// consistencyPath returns PROOF(size1, D[0:size2]) of RFC 9162 section
// 2.1.4.1, empty when size1 is 0 or size2. The caller checks
// size1 <= size2 <= t.size().
func (t *tree) consistencyPath(size1, size2 uint64) []Hash {
	if size1 == 0 || size1 == size2 {
		return nil
	}
	// SUBPROOF(m, D[lo:hi], b) unrolled, with m kept as an absolute leaf
	// count. Hashes are collected root first and reversed at the end.
	path := make([]Hash, 0, bits.Len64(size2)+1)
	lo, hi, m, b := uint64(0), size2, size1, true
	for m != hi {
		k := largestPowerOfTwoBelow(hi - lo)
		if m <= lo+k {
			path = append(path, t.subtreeHash(lo+k, hi))
			hi = lo + k
		} else {
			path = append(path, t.subtreeHash(lo, lo+k))
			lo += k
			b = false
		}
	}
	if !b {
		path = append(path, t.subtreeHash(lo, hi))
	}
	slices.Reverse(path)
	return path
}
