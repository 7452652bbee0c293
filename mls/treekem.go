package mls

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"maps"
	"slices"
)

// This file implements TreeKEM (RFC 9420 sections 7.4 to 7.6 and the path
// parts of 12.4): making an UpdatePath as committer, merging and
// decrypting one as receiver, and installing the path secret a new member
// receives in its Welcome.

// updatePathLabel is the EncryptWithLabel label of path secrets.
const updatePathLabel = "UpdatePathNode"

// treePrivate is a member's private TreeKEM state: the HPKE private keys
// of its leaf and of the parent nodes on its direct path it knows.
type treePrivate struct {
	leaf LeafIndex
	keys map[NodeIndex][]byte // HPKE private keys by node
}

// newTreePrivate starts the private state of the member at leaf with its
// leaf's HPKE private key.
func newTreePrivate(leaf LeafIndex, leafKey []byte) *treePrivate {
	return &treePrivate{leaf: leaf, keys: map[NodeIndex][]byte{leaf.node(): leafKey}}
}

// clone returns a copy that can be changed without touching p.
func (p *treePrivate) clone() *treePrivate {
	return &treePrivate{leaf: p.leaf, keys: maps.Clone(p.keys)}
}

// checkPrivate verifies that priv matches the tree: the member's leaf
// key is present, and every key sits on a non-blank node on the member's
// direct path (or its leaf) whose public key it matches.
func (t *ratchetTree) checkPrivate(priv *treePrivate) error {
	if t.leaf(priv.leaf) == nil {
		return fmt.Errorf("checking private state: %w: leaf %d is blank or outside the tree", ErrPrivateState, priv.leaf)
	}
	if _, ok := priv.keys[priv.leaf.node()]; !ok {
		return fmt.Errorf("checking private state: %w: no key for leaf %d", ErrPrivateState, priv.leaf)
	}
	for x, k := range priv.keys {
		if !t.inTree(x) || !isAncestor(x, priv.leaf.node()) {
			return fmt.Errorf("checking private state: %w: key for node %d off the direct path of leaf %d", ErrPrivateState, x, priv.leaf)
		}
		pub := t.nodes[x].encryptionKey()
		if pub == nil {
			return fmt.Errorf("checking private state: %w: key for blank node %d", ErrPrivateState, x)
		}
		got, err := t.suite.HPKEPublicKey(k)
		if err != nil {
			return fmt.Errorf("checking private state: %w: node %d: %w", ErrPrivateState, x, err)
		}
		if !bytes.Equal(got, pub) {
			return fmt.Errorf("checking private state: %w: key for node %d does not match the tree", ErrPrivateState, x)
		}
	}
	return nil
}

// prunePrivate drops the keys of nodes that are now blank or outside the
// tree (after removes, updates and truncation).
func (t *ratchetTree) prunePrivate(priv *treePrivate) {
	for x := range priv.keys {
		if !t.inTree(x) || t.nodes[x].blank() {
			delete(priv.keys, x)
		}
	}
}

// nodeKeyPair derives a node's HPKE key pair from its path secret.
func (t *ratchetTree) nodeKeyPair(pathSecret []byte) (priv, pub []byte, err error) {
	return t.suite.DeriveKeyPair(t.suite.DeriveSecret(pathSecret, "node"))
}

// filteredPathFrom returns the filtered direct path of node x (the
// ancestors whose child off the path has a non-empty resolution) and the
// copath child of each.
func (t *ratchetTree) filteredPathFrom(x NodeIndex) (path, copathChildren []NodeIndex) {
	r := t.root()
	for ; x != r; x = x.parent() {
		s := x.sibling()
		if t.subtreeBlank(s) {
			continue
		}
		path = append(path, x.parent())
		copathChildren = append(copathChildren, s)
	}
	return path, copathChildren
}

// pathParentHashes computes the parent_hash of each new path node and of
// the leaf (RFC 9420 section 7.9): the top node gets an empty parent
// hash, each lower node the parent hash of the node above it. pubs are the
// new public keys of path; the copath subtrees are untouched by a path
// update, so their cached tree hashes are used.
func (t *ratchetTree) pathParentHashes(pubs [][]byte, copathChildren []NodeIndex) (nodeHashes [][]byte, leafHash []byte) {
	nodeHashes = make([][]byte, len(pubs))
	ph := []byte{}
	for k := len(pubs) - 1; k >= 0; k-- {
		nodeHashes[k] = ph
		ph = treeParentHash(t.suite, pubs[k], ph, t.nodeHash(copathChildren[k]))
	}
	if len(pubs) == 0 {
		return nodeHashes, nil
	}
	return nodeHashes, ph
}

// applyPath blanks the direct path of leaf l, installs the new parent
// nodes on its filtered direct path and the new leaf.
func (t *ratchetTree) applyPath(l LeafIndex, leaf *LeafNode, path []NodeIndex, pubs, parentHashes [][]byte) {
	t.blankDirectPath(l)
	for k, x := range path {
		t.nodes[x] = treeNode{parent: &ParentNode{EncryptionKey: pubs[k], ParentHash: parentHashes[k], UnmergedLeaves: []LeafIndex{}}}
	}
	t.nodes[l.node()] = treeNode{leaf: leaf}
	t.invalidate(l.node())
}

// pendingPath is a committer's new path before its secrets are encrypted.
type pendingPath struct {
	sender         LeafIndex
	leaf           *LeafNode
	path           []NodeIndex // filtered direct path
	copathChildren []NodeIndex
	secrets        [][]byte // path secret of each path node
	pubs           [][]byte
	commitSecret   []byte
}

// generatePath makes a fresh leaf key pair and path secrets for the
// member at priv.leaf (RFC 9420 section 7.4), derives the node keys along
// its filtered direct path, computes parent hashes, builds and signs the
// new leaf (source commit; credential, capabilities and extensions from
// leafTemplate, or from the current leaf when nil; signature key from
// leafTemplate or else from sigPriv),
// merges all of it into t and updates priv. The tree must already have the
// commit's proposals applied. Nothing is changed on error.
func (t *ratchetTree) generatePath(priv *treePrivate, leafTemplate *LeafNode, sigPriv SignaturePrivateKey, groupID []byte, rand io.Reader) (*pendingPath, error) {
	l := priv.leaf
	if t.leaf(l) == nil {
		return nil, fmt.Errorf("generating update path: %w: leaf %d is blank or outside the tree", ErrInvalidPath, l)
	}
	if leafTemplate == nil {
		leafTemplate = t.leaf(l)
	}
	leafPriv, leafPub, err := t.suite.GenerateKeyPair(rand)
	if err != nil {
		return nil, fmt.Errorf("generating update path: leaf key: %w", err)
	}
	p := &pendingPath{sender: l}
	p.path, p.copathChildren = t.filteredPathFrom(l.node())
	ps := make([]byte, t.suite.Nh())
	if _, err := io.ReadFull(rand, ps); err != nil {
		return nil, fmt.Errorf("generating update path: reading randomness: %w", err)
	}
	privs := make([][]byte, len(p.path))
	for k := range p.path {
		sk, pk, err := t.nodeKeyPair(ps)
		if err != nil {
			return nil, fmt.Errorf("generating update path: node %d: %w", p.path[k], err)
		}
		p.secrets = append(p.secrets, ps)
		p.pubs = append(p.pubs, pk)
		privs[k] = sk
		ps = t.suite.DeriveSecret(ps, "path")
	}
	p.commitSecret = ps
	parentHashes, leafParentHash := t.pathParentHashes(p.pubs, p.copathChildren)

	sigKey := leafTemplate.SignatureKey
	if len(sigKey) == 0 {
		sigKey = sigPriv.PublicKey()
	}
	leaf := &LeafNode{
		EncryptionKey: leafPub,
		SignatureKey:  sigKey,
		Credential:    leafTemplate.Credential,
		Capabilities:  leafTemplate.Capabilities,
		Source:        LeafSourceCommit,
		ParentHash:    leafParentHash,
		Extensions:    leafTemplate.Extensions,
	}
	if leaf.ParentHash == nil {
		leaf.ParentHash = []byte{}
	}
	if err := signLeaf(t.suite, leaf, sigPriv, groupID, l); err != nil {
		return nil, fmt.Errorf("generating update path: %w", err)
	}
	p.leaf = leaf

	t.applyPath(l, leaf, p.path, p.pubs, parentHashes)
	for x := range priv.keys {
		if x != l.node() && isAncestor(x, l.node()) {
			delete(priv.keys, x)
		}
	}
	priv.keys[l.node()] = leafPriv
	for k, x := range p.path {
		priv.keys[x] = privs[k]
	}
	return p, nil
}

// encrypt seals each path secret to the resolution of its copath child,
// leaving out the leaves in exclude (members added by this commit), with
// groupContext (the serialized provisional GroupContext, whose tree hash
// covers the merged path) as context (RFC 9420 section 7.6). t is the
// tree generatePath merged into. It returns the UpdatePath and the commit
// secret. HPKE encapsulation draws its randomness from crypto/rand inside
// crypto/hpke, which offers no way to inject it; rand is reserved for
// that.
func (p *pendingPath) encrypt(t *ratchetTree, groupContext []byte, exclude []LeafIndex, rand io.Reader) (*UpdatePath, []byte, error) {
	_ = rand
	up := &UpdatePath{LeafNode: *p.leaf, Nodes: make([]UpdatePathNode, len(p.path))}
	var res []NodeIndex
	for k := range p.path {
		res = t.resolutionExcluding(res[:0], p.copathChildren[k], exclude)
		cts := make([]HPKECiphertext, 0, len(res))
		for _, r := range res {
			ct, err := t.suite.EncryptWithLabel(t.nodes[r].encryptionKey(), updatePathLabel, groupContext, p.secrets[k])
			if err != nil {
				return nil, nil, fmt.Errorf("encrypting path secret of node %d to node %d: %w", p.path[k], r, err)
			}
			cts = append(cts, ct)
		}
		up.Nodes[k] = UpdatePathNode{EncryptionKey: p.pubs[k], EncryptedPathSecret: cts}
	}
	return up, p.commitSecret, nil
}

// resolutionExcluding appends the resolution of x without the leaves in
// exclude to out.
func (t *ratchetTree) resolutionExcluding(out []NodeIndex, x NodeIndex, exclude []LeafIndex) []NodeIndex {
	start := len(out)
	t.appendResolution(&out, x, -1)
	if len(exclude) == 0 {
		return out
	}
	kept := out[:start]
	for _, r := range out[start:] {
		if r.isLeaf() && slices.Contains(exclude, r.leaf()) {
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// pathSecretFor returns the path secret a new member receives in its
// GroupSecrets: the one of the lowest node of the committer's filtered
// direct path above the new member (their common ancestor), or nil.
func (p *pendingPath) pathSecretFor(t *ratchetTree, newMember LeafIndex) []byte {
	if uint32(newMember) >= t.numLeaves() || newMember == p.sender {
		return nil
	}
	x := commonAncestor(p.sender.node(), newMember.node())
	for k, y := range p.path {
		if y == x {
			return p.secrets[k]
		}
	}
	return nil
}

// mergePath checks an UpdatePath from sender against the tree (which has
// the commit's proposals applied) and merges it: the node count must match
// the sender's filtered direct path, the leaf must be a signed commit leaf
// whose parent_hash matches the parent-hash chain of the new nodes. The
// rest of leaf validation (validateLeaf) is the caller's job. Nothing is
// changed on error.
func (t *ratchetTree) mergePath(sender LeafIndex, path *UpdatePath, groupID []byte) error {
	if t.leaf(sender) == nil {
		return fmt.Errorf("merging update path: %w: sender leaf %d is blank or outside the tree", ErrInvalidPath, sender)
	}
	fp, cp := t.filteredPathFrom(sender.node())
	if len(path.Nodes) != len(fp) {
		return fmt.Errorf("merging update path: %w: %d nodes, filtered direct path of leaf %d has %d", ErrInvalidPath, len(path.Nodes), sender, len(fp))
	}
	leaf := path.LeafNode
	if leaf.Source != LeafSourceCommit {
		return fmt.Errorf("merging update path: %w: leaf source %d, want commit", ErrInvalidLeaf, leaf.Source)
	}
	if err := verifyLeafSignature(t.suite, &leaf, groupID, sender); err != nil {
		return fmt.Errorf("merging update path: %w: %w", ErrInvalidLeaf, err)
	}
	pubs := make([][]byte, len(fp))
	for k := range path.Nodes {
		pubs[k] = path.Nodes[k].EncryptionKey
		if len(pubs[k]) == 0 {
			return fmt.Errorf("merging update path: %w: node %d has an empty key", ErrInvalidPath, fp[k])
		}
	}
	parentHashes, leafParentHash := t.pathParentHashes(pubs, cp)
	if leafParentHash == nil {
		leafParentHash = []byte{}
	}
	if !bytes.Equal(leaf.ParentHash, leafParentHash) {
		return fmt.Errorf("merging update path: %w: leaf %d parent_hash does not match its new path", ErrParentHash, sender)
	}
	t.applyPath(sender, &leaf, fp, pubs, parentHashes)
	return nil
}

// decryptPath runs after mergePath: it decrypts the path secret of the
// lowest node of the sender's filtered direct path above priv.leaf,
// derives the secrets up to the root checking each derived public key
// against the merged tree, updates priv and returns the commit secret.
// Nothing is changed on error.
func (t *ratchetTree) decryptPath(priv *treePrivate, sender LeafIndex, path *UpdatePath, groupContext []byte, exclude []LeafIndex) ([]byte, error) {
	_, commit, err := t.decryptPathSecret(priv, sender, path, groupContext, exclude)
	return commit, err
}

// decryptPathSecret is decryptPath that also returns the decrypted path
// secret.
func (t *ratchetTree) decryptPathSecret(priv *treePrivate, sender LeafIndex, path *UpdatePath, groupContext []byte, exclude []LeafIndex) (pathSecret, commitSecret []byte, err error) {
	me := priv.leaf
	if me == sender {
		return nil, nil, fmt.Errorf("decrypting update path: %w: own path", ErrInvalidPath)
	}
	if uint32(me) >= t.numLeaves() || uint32(sender) >= t.numLeaves() {
		return nil, nil, fmt.Errorf("decrypting update path: %w: leaf outside the tree", ErrInvalidPath)
	}
	fp, cp := t.filteredPathFrom(sender.node())
	if len(path.Nodes) != len(fp) {
		return nil, nil, fmt.Errorf("decrypting update path: %w: %d nodes, filtered direct path has %d", ErrInvalidPath, len(path.Nodes), len(fp))
	}
	k := -1
	for i, x := range fp {
		if isAncestor(x, me.node()) {
			k = i
			break
		}
	}
	if k < 0 {
		return nil, nil, fmt.Errorf("decrypting update path: %w: no node of the path covers leaf %d", ErrInvalidPath, me)
	}
	res := t.resolutionExcluding(nil, cp[k], exclude)
	cts := path.Nodes[k].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, nil, fmt.Errorf("decrypting update path: %w: node %d has %d ciphertexts for a resolution of %d", ErrInvalidPath, fp[k], len(cts), len(res))
	}
	idx := -1
	var key []byte
	for i, r := range res {
		if sk, ok := priv.keys[r]; ok {
			idx, key = i, sk
			break
		}
	}
	if idx < 0 {
		return nil, nil, fmt.Errorf("decrypting update path: %w: no private key in the resolution of node %d", ErrPrivateState, cp[k])
	}
	ps, err := t.suite.DecryptWithLabel(key, updatePathLabel, groupContext, cts[idx])
	if err != nil {
		return nil, nil, fmt.Errorf("decrypting update path: path secret of node %d: %w", fp[k], err)
	}
	if len(ps) != t.suite.Nh() {
		return nil, nil, fmt.Errorf("decrypting update path: %w: path secret is %d bytes", ErrInvalidPath, len(ps))
	}
	newKeys, commit, err := t.derivePath(ps, fp[k:])
	if err != nil {
		return nil, nil, fmt.Errorf("decrypting update path: %w", err)
	}
	for x := range priv.keys {
		if x != me.node() && isAncestor(x, fp[k]) {
			delete(priv.keys, x)
		}
	}
	for x, sk := range newKeys {
		priv.keys[x] = sk
	}
	return ps, commit, nil
}

// derivePath derives the key pairs of the nodes in path from the path
// secret of path[0], checks each public key against the tree, and returns
// the private keys and the secret one past the last node.
func (t *ratchetTree) derivePath(ps []byte, path []NodeIndex) (map[NodeIndex][]byte, []byte, error) {
	keys := make(map[NodeIndex][]byte, len(path))
	for _, x := range path {
		sk, pk, err := t.nodeKeyPair(ps)
		if err != nil {
			return nil, nil, fmt.Errorf("node %d: %w", x, err)
		}
		want := t.parentNode(x)
		if want == nil || subtle.ConstantTimeCompare(want.EncryptionKey, pk) != 1 {
			return nil, nil, fmt.Errorf("%w: key derived for node %d does not match the tree", ErrInvalidPath, x)
		}
		keys[x] = sk
		ps = t.suite.DeriveSecret(ps, "path")
	}
	return keys, ps, nil
}

// installPathSecret installs, for a new member, the keys from node from
// (the common ancestor with the committer, whose path secret arrived in
// GroupSecrets) up along the filtered direct path to the root, checking
// each against the tree.
func (t *ratchetTree) installPathSecret(priv *treePrivate, from NodeIndex, pathSecret []byte) error {
	if !t.inTree(from) || from.isLeaf() || !isAncestor(from, priv.leaf.node()) {
		return fmt.Errorf("installing path secret: %w: node %d is not a parent above leaf %d", ErrPrivateState, from, priv.leaf)
	}
	up, _ := t.filteredPathFrom(from)
	keys, _, err := t.derivePath(pathSecret, append([]NodeIndex{from}, up...))
	if err != nil {
		return fmt.Errorf("installing path secret: %w", err)
	}
	for x, sk := range keys {
		priv.keys[x] = sk
	}
	return nil
}
