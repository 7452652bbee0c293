package mls

import (
	"errors"
	"fmt"
	"iter"
)

// This file holds the ratchet tree of RFC 9420 section 7: its array
// representation, resolutions, filtered direct paths, and the tree
// operations of section 7.7 (add, update, remove). Tree hashes are in
// treehash.go, leaf validation in leaf.go, TreeKEM in treekem.go.

// Errors reported for ratchet trees. They are wrapped with context; match
// them with errors.Is.
var (
	// ErrInvalidTree is returned for a ratchet tree whose shape or
	// contents are not acceptable (wrong node kinds, bad unmerged leaves,
	// a tree that is too large, ...).
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrParentHash is returned when a parent node cannot be chained back
	// to a leaf by parent hashes, or a committer's leaf carries the wrong
	// parent hash.
	ErrParentHash = errors.New("mls: parent hash mismatch")
	// ErrInvalidLeaf is returned when a leaf node fails validation
	// (RFC 9420 section 7.3).
	ErrInvalidLeaf = errors.New("mls: invalid leaf node")
	// ErrInvalidPath is returned for an UpdatePath that does not fit the
	// tree or whose keys do not match the decrypted path secret.
	ErrInvalidPath = errors.New("mls: invalid update path")
	// ErrPrivateState is returned when the private TreeKEM state does not
	// match the public tree.
	ErrPrivateState = errors.New("mls: private tree state inconsistent")
)

// treeMaxLeaves bounds the tree size accepted from the wire and reached by
// adds, so that node indices never overflow uint32.
const treeMaxLeaves = 1 << 30

// treeNode is one slot of the array representation: blank when both leaf
// and parent are nil. The *LeafNode and *ParentNode values are never
// mutated once stored (copy on write), so clone can share them.
type treeNode struct {
	leaf   *LeafNode
	parent *ParentNode
	hash   []byte // cached tree hash of the subtree rooted here; nil when stale
}

func (n *treeNode) blank() bool { return n.leaf == nil && n.parent == nil }

// encryptionKey returns the HPKE public key held by a non-blank node.
func (n *treeNode) encryptionKey() []byte {
	if n.leaf != nil {
		return n.leaf.EncryptionKey
	}
	if n.parent != nil {
		return n.parent.EncryptionKey
	}
	return nil
}

// ratchetTree is a group's public ratchet tree. The node array always
// covers a full tree (leaf count a power of two); trailing blanks are
// dropped only when encoding.
type ratchetTree struct {
	suite *CipherSuite
	nodes []treeNode
}

// newRatchetTree builds a tree from decoded nodes (as from
// DecodeRatchetTree), padding with blanks to a full tree. It checks the
// node kinds and the unmerged leaf lists but not signatures or parent
// hashes; see verifyParentHashes and verifyLeafSignatures.
func newRatchetTree(s *CipherSuite, nodes []*Node) (*ratchetTree, error) {
	if s == nil {
		return nil, fmt.Errorf("building ratchet tree: %w: no cipher suite", ErrInvalidTree)
	}
	if len(nodes) == 0 || len(nodes)%2 == 0 {
		return nil, fmt.Errorf("building ratchet tree: %w: %d nodes", ErrInvalidTree, len(nodes))
	}
	if nodes[len(nodes)-1] == nil {
		return nil, fmt.Errorf("building ratchet tree: %w: tree ends in a blank node", ErrInvalidTree)
	}
	leaves := uint32(len(nodes)+1) / 2
	if leaves > treeMaxLeaves {
		return nil, fmt.Errorf("building ratchet tree: %w: %d leaves", ErrInvalidTree, leaves)
	}
	full := uint32(1)
	for full < leaves {
		full *= 2
	}
	t := &ratchetTree{suite: s, nodes: make([]treeNode, nodeWidth(full))}
	for i, n := range nodes {
		if n == nil {
			continue
		}
		if (n.Leaf != nil) == (n.Parent != nil) {
			return nil, fmt.Errorf("building ratchet tree: %w: node %d must be exactly one of leaf and parent", ErrInvalidTree, i)
		}
		if (i%2 == 0) != (n.Leaf != nil) {
			return nil, fmt.Errorf("building ratchet tree: %w: node %d has the wrong type", ErrInvalidTree, i)
		}
		t.nodes[i] = treeNode{leaf: n.Leaf, parent: n.Parent}
	}
	if err := t.checkUnmerged(); err != nil {
		return nil, fmt.Errorf("building ratchet tree: %w", err)
	}
	return t, nil
}

// checkUnmerged checks that every unmerged leaf of a parent is a
// non-blank leaf below it, listed once, and that it is also unmerged at
// every non-blank node between that parent and the leaf (RFC 9420
// section 7.1 and 12.4.3.1). It runs in time linear in the number of
// unmerged entries times the tree depth.
func (t *ratchetTree) checkUnmerged() error {
	n := t.numLeaves()
	at := map[LeafIndex][]NodeIndex{} // nodes listing the leaf, bottom-up
	// Visit parents level by level from the bottom so each list is
	// ordered by height.
	for lvl := uint(1); int(1)<<lvl-1 < len(t.nodes); lvl++ {
		for x := NodeIndex(1)<<lvl - 1; int(x) < len(t.nodes); x += NodeIndex(1) << (lvl + 1) {
			p := t.nodes[x].parent
			if p == nil {
				continue
			}
			for _, l := range p.UnmergedLeaves {
				if uint32(l) >= n || !isAncestor(x, l.node()) || t.nodes[l.node()].leaf == nil {
					return errorf(ErrInvalidTree, "node %d lists unmerged leaf %d that is not a member below it", x, l)
				}
				if xs := at[l]; len(xs) > 0 && xs[len(xs)-1] == x {
					return errorf(ErrInvalidTree, "node %d lists unmerged leaf %d twice", x, l)
				}
				at[l] = append(at[l], x)
			}
		}
	}
	// The nodes listing l must be exactly the lowest non-blank ancestors
	// of l, with no non-blank ancestor skipped.
	for l, xs := range at {
		k := 0
		for y := l.node().parent(); k < len(xs); y = y.parent() {
			if t.nodes[y].blank() {
				continue
			}
			if y != xs[k] {
				return errorf(ErrInvalidTree, "leaf %d is unmerged at node %d but not at node %d below it", l, xs[k], y)
			}
			k++
		}
	}
	return nil
}

// encode returns the tree as carried in the ratchet_tree extension and in
// vectors: trailing blank nodes removed. The returned nodes share the
// tree's (immutable) leaf and parent values.
func (t *ratchetTree) encode() []*Node {
	end := len(t.nodes)
	for end > 0 && t.nodes[end-1].blank() {
		end--
	}
	out := make([]*Node, end)
	for i := range out {
		n := &t.nodes[i]
		if !n.blank() {
			out[i] = &Node{Leaf: n.leaf, Parent: n.parent}
		}
	}
	return out
}

// clone returns a copy whose changes never reach t. Leaf and parent values
// are shared because the tree never mutates them in place.
func (t *ratchetTree) clone() *ratchetTree {
	c := &ratchetTree{suite: t.suite, nodes: make([]treeNode, len(t.nodes))}
	copy(c.nodes, t.nodes)
	return c
}

// numLeaves is the leaf count of the full tree (a power of two).
func (t *ratchetTree) numLeaves() uint32 { return uint32(len(t.nodes)+1) / 2 }

func (t *ratchetTree) root() NodeIndex { return root(t.numLeaves()) }

// leaf returns the leaf node at i, or nil if blank or out of range. The
// caller must not modify it.
func (t *ratchetTree) leaf(i LeafIndex) *LeafNode {
	if uint32(i) >= t.numLeaves() {
		return nil
	}
	return t.nodes[i.node()].leaf
}

// parentNode returns the parent node at x, or nil if blank or not a parent.
func (t *ratchetTree) parentNode(x NodeIndex) *ParentNode {
	if int(x) >= len(t.nodes) {
		return nil
	}
	return t.nodes[x].parent
}

// inTree reports whether x is a node index of the tree.
func (t *ratchetTree) inTree(x NodeIndex) bool { return int(x) < len(t.nodes) }

// resolution returns the resolution of x (RFC 9420 section 4.1.1): the
// non-blank nodes that together cover its subtree, left to right, with a
// parent's unmerged leaves after it.
func (t *ratchetTree) resolution(x NodeIndex) []NodeIndex {
	if !t.inTree(x) {
		return nil
	}
	var out []NodeIndex
	t.appendResolution(&out, x, -1)
	return out
}

// appendResolution appends the resolution of x to out. With limit >= 0 it
// stops (returning false) once out would hold more than limit nodes.
func (t *ratchetTree) appendResolution(out *[]NodeIndex, x NodeIndex, limit int) bool {
	n := &t.nodes[x]
	switch {
	case n.leaf != nil:
		*out = append(*out, x)
	case n.parent != nil:
		*out = append(*out, x)
		for _, l := range n.parent.UnmergedLeaves {
			*out = append(*out, l.node())
		}
	case x.isLeaf():
		return true
	default:
		if !t.appendResolution(out, x.left(), limit) {
			return false
		}
		return t.appendResolution(out, x.right(), limit)
	}
	return limit < 0 || len(*out) <= limit
}

// subtreeBlank reports whether every node below and at x is blank, i.e.
// its resolution is empty.
func (t *ratchetTree) subtreeBlank(x NodeIndex) bool {
	if !t.nodes[x].blank() {
		return false
	}
	if x.isLeaf() {
		return true
	}
	return t.subtreeBlank(x.left()) && t.subtreeBlank(x.right())
}

// filteredDirectPath returns the direct path of leaf l without the nodes
// whose child off the path (copath child) has an empty resolution (RFC
// 9420 section 4.1.2), and the copath child of each node kept.
func (t *ratchetTree) filteredDirectPath(l LeafIndex) (path, copathChildren []NodeIndex) {
	return t.filteredPathFrom(l.node())
}

// setNode replaces node x and invalidates the cached hashes of x and its
// ancestors.
func (t *ratchetTree) setNode(x NodeIndex, n treeNode) {
	n.hash = nil
	t.nodes[x] = n
	t.invalidate(x)
}

// invalidate drops the cached hashes on the path from x to the root.
func (t *ratchetTree) invalidate(x NodeIndex) {
	r := t.root()
	for {
		t.nodes[x].hash = nil
		if x == r {
			return
		}
		x = x.parent()
	}
}

// blankDirectPath blanks every parent on the direct path of leaf l.
func (t *ratchetTree) blankDirectPath(l LeafIndex) {
	r := t.root()
	for x := l.node(); x != r; {
		x = x.parent()
		t.nodes[x] = treeNode{}
	}
	t.invalidate(l.node())
}

// addLeaf puts l in the leftmost blank leaf, doubling the tree if there is
// none, and lists the new leaf as unmerged at each non-blank ancestor
// (RFC 9420 section 7.7). The caller has validated l.
func (t *ratchetTree) addLeaf(l *LeafNode) LeafIndex {
	n := t.numLeaves()
	i := LeafIndex(n)
	for k := uint32(0); k < n; k++ {
		if t.nodes[LeafIndex(k).node()].leaf == nil {
			i = LeafIndex(k)
			break
		}
	}
	if uint32(i) == n {
		t.extend()
	}
	t.nodes[i.node()] = treeNode{leaf: l}
	r := t.root()
	for x := i.node(); x != r; {
		x = x.parent()
		if p := t.nodes[x].parent; p != nil {
			np := *p
			np.UnmergedLeaves = append(append([]LeafIndex(nil), p.UnmergedLeaves...), i)
			t.nodes[x].parent = &np
		}
	}
	t.invalidate(i.node())
	return i
}

// extend doubles the tree: the old tree becomes the left subtree of a new
// blank root. Cached hashes stay valid.
func (t *ratchetTree) extend() {
	n := t.numLeaves()
	if n >= treeMaxLeaves {
		panic("mls: ratchet tree too large")
	}
	nodes := make([]treeNode, nodeWidth(2*n))
	copy(nodes, t.nodes)
	t.nodes = nodes
}

// updateLeaf replaces the leaf at i and blanks its direct path (RFC 9420
// section 7.7, Update proposals). The caller has validated l.
func (t *ratchetTree) updateLeaf(i LeafIndex, l *LeafNode) {
	t.nodes[i.node()] = treeNode{leaf: l}
	t.blankDirectPath(i)
}

// removeLeaf blanks the leaf at i and its direct path, then halves the
// tree while its right half is entirely blank.
func (t *ratchetTree) removeLeaf(i LeafIndex) {
	if uint32(i) >= t.numLeaves() {
		return
	}
	t.nodes[i.node()] = treeNode{}
	t.blankDirectPath(i)
	t.truncate()
}

// truncate drops the right half of the tree while it holds only blanks,
// keeping at least one leaf.
func (t *ratchetTree) truncate() {
	for t.numLeaves() > 1 {
		r := t.root()
		if !t.subtreeBlank(r.right()) {
			return
		}
		half := r.left()
		// The left subtree of a full tree occupies nodes [0, 2*half].
		t.nodes = t.nodes[: 2*half+1 : 2*half+1]
	}
}

// leaves yields the non-blank leaves with their indices, left to right.
func (t *ratchetTree) leaves() iter.Seq2[LeafIndex, *LeafNode] {
	return func(yield func(LeafIndex, *LeafNode) bool) {
		for i := LeafIndex(0); uint32(i) < t.numLeaves(); i++ {
			if l := t.nodes[i.node()].leaf; l != nil && !yield(i, l) {
				return
			}
		}
	}
}
