package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// This file computes tree hashes (RFC 9420 section 7.8) with a per-node
// cache, and parent hashes (section 7.9) including the verification of a
// whole tree's parent-hash chains (section 7.9.2).

// treeHash returns the tree hash of the root.
func (t *ratchetTree) treeHash() []byte { return t.nodeHash(t.root()) }

// nodeHash returns the tree hash of the subtree rooted at x, computing and
// caching what is stale. The result must not be modified.
func (t *ratchetTree) nodeHash(x NodeIndex) []byte {
	n := &t.nodes[x]
	if n.hash != nil {
		return n.hash
	}
	if x.isLeaf() {
		n.hash = t.leafHash(x.leaf(), n.leaf)
	} else {
		left, right := t.nodeHash(x.left()), t.nodeHash(x.right())
		n.hash = t.parentHashInput(n.parent, n.parent != nil, nil, left, right)
	}
	return n.hash
}

// leafHash is H(TreeHashInput{leaf, LeafNodeHashInput{index, optional leaf}}).
func (t *ratchetTree) leafHash(i LeafIndex, l *LeafNode) []byte {
	var w writer
	w.u8(uint8(NodeLeaf))
	w.u32(uint32(i))
	w.optional(l != nil, func(w *writer) { l.marshal(w) })
	return t.suite.Hash(w.b)
}

// parentHashInput hashes TreeHashInput for a parent. When drop is not nil
// the listed leaves are left out of the node's unmerged_leaves.
func (t *ratchetTree) parentHashInput(p *ParentNode, present bool, drop leafSet, left, right []byte) []byte {
	var w writer
	w.u8(uint8(NodeParent))
	w.optional(present, func(w *writer) {
		w.opaque(p.EncryptionKey)
		w.opaque(p.ParentHash)
		w.vector(func(w *writer) {
			for _, l := range p.UnmergedLeaves {
				if !drop.has(l) {
					w.u32(uint32(l))
				}
			}
		})
	})
	w.opaque(left)
	w.opaque(right)
	return t.suite.Hash(w.b)
}

// hashWithout returns the tree hash of x's subtree in a copy of the tree
// where the leaves in drop are blank and removed from every unmerged
// list: the "original sibling tree hash" of section 7.9. Subtrees that
// hold none of the dropped leaves use the cache.
func (t *ratchetTree) hashWithout(x NodeIndex, drop leafSet) []byte {
	if !drop.anyBelow(x) {
		return t.nodeHash(x)
	}
	if x.isLeaf() {
		return t.leafHash(x.leaf(), nil)
	}
	n := &t.nodes[x]
	left, right := t.hashWithout(x.left(), drop), t.hashWithout(x.right(), drop)
	return t.parentHashInput(n.parent, n.parent != nil, drop, left, right)
}

// leafSet is a sorted set of leaf indices, so that lookups stay cheap for
// the long unmerged lists a hostile tree may carry.
type leafSet []LeafIndex

func newLeafSet(ls []LeafIndex) leafSet {
	s := slices.Clone(ls)
	slices.Sort(s)
	return s
}

func (s leafSet) has(l LeafIndex) bool {
	_, ok := slices.BinarySearch(s, l)
	return ok
}

// anyBelow reports whether s holds a leaf in the subtree of x.
func (s leafSet) anyBelow(x NodeIndex) bool {
	if len(s) == 0 {
		return false
	}
	span := NodeIndex(1)<<x.level() - 1
	lo, hi := (x - span).leaf(), (x + span).leaf()
	i, _ := slices.BinarySearch(s, lo)
	return i < len(s) && s[i] <= hi
}

// parentHash computes the parent hash of parent node p at x with respect
// to its child c: H(ParentHashInput{encryption_key, parent_hash,
// original_sibling_tree_hash}), the sibling being the other child of x.
func (t *ratchetTree) parentHash(x, c NodeIndex) []byte {
	p := t.nodes[x].parent
	s := x.left()
	if s == c {
		s = x.right()
	}
	sib := t.hashWithout(s, newLeafSet(p.UnmergedLeaves))
	return treeParentHash(t.suite, p.EncryptionKey, p.ParentHash, sib)
}

func treeParentHash(s *CipherSuite, key, parentHash, siblingHash []byte) []byte {
	var w writer
	w.opaque(key)
	w.opaque(parentHash)
	w.opaque(siblingHash)
	return s.Hash(w.b)
}

// nodeParentHash returns the parent_hash field of a non-blank node.
func (n *treeNode) parentHashField() []byte {
	if n.leaf != nil {
		if n.leaf.Source != LeafSourceCommit {
			return nil
		}
		return n.leaf.ParentHash
	}
	return n.parent.ParentHash
}

// verifyParentHashes checks that every non-blank parent node is
// parent-hash valid (RFC 9420 section 7.9.2): for one of its children C,
// with the other child S, some node D in the resolution of C carries
// parent_hash = ParentHash(P, S), and the resolution of C is exactly D
// plus P's unmerged leaves below C.
func (t *ratchetTree) verifyParentHashes() error {
	var res []NodeIndex
	for i := range t.nodes {
		p := t.nodes[i].parent
		if p == nil {
			continue
		}
		x := NodeIndex(i)
		ok := false
		for _, c := range [2]NodeIndex{x.left(), x.right()} {
			var below leafSet
			for _, l := range p.UnmergedLeaves {
				if isAncestor(c, l.node()) {
					below = append(below, l)
				}
			}
			slices.Sort(below)
			res = res[:0]
			if !t.appendResolution(&res, c, len(below)+1) || len(res) != len(below)+1 {
				continue
			}
			ph := t.parentHash(x, c)
			for _, d := range res {
				dn := &t.nodes[d]
				if !bytes.Equal(dn.parentHashField(), ph) {
					continue
				}
				if d.isLeaf() && below.has(d.leaf()) {
					continue
				}
				// Every other node of the resolution must be one of P's
				// unmerged leaves.
				match := true
				for _, e := range res {
					if e != d && (!e.isLeaf() || !below.has(e.leaf())) {
						match = false
						break
					}
				}
				if match {
					ok = true
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			return fmt.Errorf("verifying parent hashes: %w: node %d is not parent-hash valid", ErrParentHash, x)
		}
	}
	return nil
}
