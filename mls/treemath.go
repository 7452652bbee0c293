package mls

import "math/bits"

// Tree math for the array representation of the ratchet tree (RFC 9420
// appendix C). The tree is always full: its leaf count is a power of two.
// Leaves sit at even node indices, parents at odd ones.

// LeafIndex numbers the leaves of the tree from the left.
type LeafIndex uint32

// NodeIndex numbers all nodes of the tree in array order.
type NodeIndex uint32

// node returns the node index of a leaf.
func (l LeafIndex) node() NodeIndex { return NodeIndex(2 * l) }

// leaf returns the leaf index of a leaf node.
func (x NodeIndex) leaf() LeafIndex { return LeafIndex(x / 2) }

func (x NodeIndex) isLeaf() bool { return x%2 == 0 }

// level is the height of x above the leaves: the number of trailing ones.
func (x NodeIndex) level() uint { return uint(bits.TrailingZeros32(^uint32(x))) }

// nodeWidth is the number of nodes in a tree with n leaves.
func nodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// log2 is floor(log2(x)) for x > 0, 0 for x == 0.
func log2(x uint32) uint {
	if x == 0 {
		return 0
	}
	return uint(bits.Len32(x) - 1)
}

// root is the root node of a tree with n leaves.
func root(n uint32) NodeIndex {
	return NodeIndex(1<<log2(nodeWidth(n)) - 1)
}

// left child of a parent node.
func (x NodeIndex) left() NodeIndex {
	k := x.level()
	return x ^ (1 << (k - 1))
}

// right child of a parent node.
func (x NodeIndex) right() NodeIndex {
	k := x.level()
	return x ^ (3 << (k - 1))
}

// parent of a non-root node in a full tree.
func (x NodeIndex) parent() NodeIndex {
	k := x.level()
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

// sibling of a non-root node.
func (x NodeIndex) sibling() NodeIndex {
	p := x.parent()
	if x < p {
		return p.right()
	}
	return p.left()
}

// directPath lists the parents of x up to and including the root, for a
// tree with n leaves. It is empty for the root.
func directPath(x NodeIndex, n uint32) []NodeIndex {
	r := root(n)
	var d []NodeIndex
	for x != r {
		x = x.parent()
		d = append(d, x)
	}
	return d
}

// copath lists the siblings of x and of each node of its direct path,
// excluding the root.
func copath(x NodeIndex, n uint32) []NodeIndex {
	r := root(n)
	var c []NodeIndex
	for x != r {
		c = append(c, x.sibling())
		x = x.parent()
	}
	return c
}

// isAncestor reports whether a is an ancestor of (or equal to) x.
func isAncestor(a, x NodeIndex) bool {
	k := a.level()
	// a's subtree spans [a - (2^k - 1), a + (2^k - 1)].
	span := NodeIndex(1<<k) - 1
	return x+span >= a && x <= a+span
}

// commonAncestor returns the lowest common ancestor of two nodes.
func commonAncestor(x, y NodeIndex) NodeIndex {
	if x.level() > y.level() {
		x, y = y, x
	}
	for !isAncestor(x, y) {
		x = x.parent()
	}
	return x
}
