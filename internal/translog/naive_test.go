package translog

import "crypto/sha256"

// An independent, deliberately naive implementation of the definitions of
// RFC 9162 section 2.1: MTH (2.1.1), PATH (2.1.3.1) and PROOF/SUBPROOF
// (2.1.4.1), written straight from the recursive text and hashing with
// crypto/sha256 directly rather than with the package's helpers.

func naiveLeaf(d []byte) Hash {
	return sha256.Sum256(append([]byte{0x00}, d...))
}

func naiveNode(l, r Hash) Hash {
	buf := append([]byte{0x01}, l[:]...)
	return sha256.Sum256(append(buf, r[:]...))
}

// naiveSplit is k: the largest power of two smaller than n (n > 1).
func naiveSplit(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

func naiveMTH(d [][]byte) Hash {
	switch n := len(d); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return naiveLeaf(d[0])
	default:
		k := naiveSplit(n)
		return naiveNode(naiveMTH(d[:k]), naiveMTH(d[k:]))
	}
}

func naivePath(m int, d [][]byte) []Hash {
	n := len(d)
	if n <= 1 {
		return nil
	}
	k := naiveSplit(n)
	if m < k {
		return append(naivePath(m, d[:k]), naiveMTH(d[k:]))
	}
	return append(naivePath(m-k, d[k:]), naiveMTH(d[:k]))
}

// naiveProof is PROOF(m, D[n]) for 0 < m < n.
func naiveProof(m int, d [][]byte) []Hash {
	return naiveSubproof(m, d, true)
}

func naiveSubproof(m int, d [][]byte, b bool) []Hash {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return []Hash{naiveMTH(d)}
	}
	k := naiveSplit(n)
	if m <= k {
		return append(naiveSubproof(m, d[:k], b), naiveMTH(d[k:]))
	}
	return append(naiveSubproof(m-k, d[k:], false), naiveMTH(d[:k]))
}
