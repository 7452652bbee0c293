package mls

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// testMember is a client with keys and a key package leaf.
type testMember struct {
	sig     SignaturePrivateKey
	encPriv []byte
	leaf    *LeafNode
}

// seededReader is a deterministic randomness source for tests.
type seededReader struct{ r *mrand.ChaCha8 }

func newSeededReader(seed uint64) *seededReader {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	return &seededReader{r: mrand.NewChaCha8(s)}
}

func (s *seededReader) Read(p []byte) (int, error) { return s.r.Read(p) }

var testLifetime = Lifetime{NotBefore: 1_000_000, NotAfter: 4_000_000_000}
var testNow = time.Unix(2_000_000_000, 0)

func testCapabilities(s *CipherSuite) Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolMLS10},
		CipherSuites: []CipherSuiteID{s.ID},
		Credentials:  []CredentialType{CredentialBasic},
	}
}

func newTestMember(t testing.TB, s *CipherSuite, name string, rnd *seededReader) *testMember {
	t.Helper()
	sig, sigPub, err := s.GenerateSignatureKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	encPriv, encPub, err := s.GenerateKeyPair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	l := &LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    Credential{Type: CredentialBasic, Identity: []byte(name)},
		Capabilities:  testCapabilities(s),
		Source:        LeafSourceKeyPackage,
		Lifetime:      testLifetime,
		Extensions:    []Extension{},
	}
	if err := signLeaf(s, l, sig, nil, 0); err != nil {
		t.Fatal(err)
	}
	return &testMember{sig: sig, encPriv: encPriv, leaf: l}
}

func testSuite(t testing.TB) *CipherSuite {
	s, err := Suite(SuiteX25519AES128)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testGroupContext(s *CipherSuite, groupID []byte, epoch uint64, tr *ratchetTree) []byte {
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: s.ID, GroupID: groupID, Epoch: epoch, TreeHash: tr.treeHash(), ConfirmedTranscriptHash: []byte{}}
	return gc.Encode()
}

// testGroup drives a group through commits with the tree and TreeKEM
// functions only, the way the group state machine will.
type testGroup struct {
	t       testing.TB
	s       *CipherSuite
	id      []byte
	epoch   uint64
	tree    *ratchetTree
	members map[LeafIndex]*testMember
	privs   map[LeafIndex]*treePrivate
	rnd     *seededReader
	names   int
}

func newTestGroup(t testing.TB, seed uint64) *testGroup {
	s := testSuite(t)
	g := &testGroup{t: t, s: s, id: []byte("group"), members: map[LeafIndex]*testMember{}, privs: map[LeafIndex]*treePrivate{}, rnd: newSeededReader(seed)}
	m := g.newMember()
	tree, err := newRatchetTree(s, []*Node{{Leaf: m.leaf}})
	if err != nil {
		t.Fatal(err)
	}
	g.tree = tree
	g.members[0] = m
	g.privs[0] = newTreePrivate(0, m.encPriv)
	return g
}

func (g *testGroup) newMember() *testMember {
	g.names++
	return newTestMember(g.t, g.s, fmt.Sprint("member-", g.names), g.rnd)
}

// commit has committer add n members, remove the leaves in remove, and
// send a path; every other member processes it and new members install
// their path secret. It checks that all end with the same tree and commit
// secret and that private states stay consistent.
func (g *testGroup) commit(committer LeafIndex, n int, remove []LeafIndex) {
	t := g.t
	t.Helper()
	after := g.tree.clone()
	for _, r := range remove {
		after.removeLeaf(r)
		delete(g.members, r)
		delete(g.privs, r)
	}
	var added []LeafIndex
	joiners := map[LeafIndex]*testMember{}
	for range n {
		m := g.newMember()
		idx := LeafIndex(0)
		for uint32(idx) < after.numLeaves() && after.leaf(idx) != nil {
			idx++
		}
		if err := after.validateLeaf(m.leaf, LeafSourceKeyPackage, nil, idx, testNow, nil, nil); err != nil {
			t.Fatalf("validating added leaf: %v", err)
		}
		i := after.addLeaf(m.leaf)
		added = append(added, i)
		joiners[i] = m
	}
	for l := range g.privs {
		after.prunePrivate(g.privs[l])
	}

	ctree := after.clone()
	cpriv := g.privs[committer].clone()
	cm := g.members[committer]
	pending, err := ctree.generatePath(cpriv, ctree.leaf(committer), cm.sig, g.id, g.rnd)
	if err != nil {
		t.Fatalf("generating path: %v", err)
	}
	ctx := testGroupContext(g.s, g.id, g.epoch+1, ctree)
	path, commitSecret, err := pending.encrypt(ctree, ctx, added, g.rnd)
	if err != nil {
		t.Fatalf("encrypting path: %v", err)
	}
	if err := ctree.verifyParentHashes(); err != nil {
		t.Fatalf("committer tree: %v", err)
	}
	if err := ctree.verifyLeafSignatures(g.id); err != nil {
		t.Fatalf("committer tree: %v", err)
	}
	// The new leaf passes validation as a commit leaf against the tree
	// before the merge.
	if err := after.validateLeaf(&path.LeafNode, LeafSourceCommit, g.id, committer, testNow, nil, nil); err != nil {
		t.Fatalf("validating committer leaf: %v", err)
	}
	wire, err := DecodeUpdatePath(path.Encode())
	if err != nil {
		t.Fatal(err)
	}
	for l, priv := range g.privs {
		if l == committer {
			continue
		}
		rt := after.clone()
		if err := rt.mergePath(committer, wire, g.id); err != nil {
			t.Fatalf("leaf %d merging: %v", l, err)
		}
		if !bytes.Equal(rt.treeHash(), ctree.treeHash()) {
			t.Fatalf("leaf %d: tree hash differs from the committer's", l)
		}
		got, err := rt.decryptPath(priv, committer, wire, testGroupContext(g.s, g.id, g.epoch+1, rt), added)
		if err != nil {
			t.Fatalf("leaf %d decrypting: %v", l, err)
		}
		if !bytes.Equal(got, commitSecret) {
			t.Fatalf("leaf %d: commit secret differs", l)
		}
	}
	g.privs[committer] = cpriv
	g.members[committer] = &testMember{sig: cm.sig, encPriv: cpriv.keys[committer.node()], leaf: ctree.leaf(committer)}
	for i, m := range joiners {
		priv := newTreePrivate(i, m.encPriv)
		ps := pending.pathSecretFor(ctree, i)
		if ps == nil {
			t.Fatalf("no path secret for new member %d", i)
		}
		if err := ctree.installPathSecret(priv, commonAncestor(committer.node(), i.node()), ps); err != nil {
			t.Fatalf("new member %d: %v", i, err)
		}
		g.privs[i] = priv
		g.members[i] = m
	}
	g.tree = ctree
	g.epoch++
	for l, priv := range g.privs {
		if err := g.tree.checkPrivate(priv); err != nil {
			t.Fatalf("epoch %d leaf %d: %v", g.epoch, l, err)
		}
	}
	// A fresh decode of the encoded tree is the same tree.
	fresh, err := DecodeRatchetTree(EncodeRatchetTree(g.tree.encode()))
	if err != nil {
		t.Fatal(err)
	}
	ft, err := newRatchetTree(g.s, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ft.treeHash(), g.tree.treeHash()) {
		t.Fatalf("epoch %d: cached tree hash differs from a fresh one", g.epoch)
	}
	if err := ft.verifyParentHashes(); err != nil {
		t.Fatalf("epoch %d: %v", g.epoch, err)
	}
}

func (g *testGroup) anyMember(r *mrand.Rand) LeafIndex {
	var ls []LeafIndex
	for l := range g.privs {
		ls = append(ls, l)
	}
	return ls[r.IntN(len(ls))]
}

func TestTreeKEMGroupLifecycle(t *testing.T) {
	g := newTestGroup(t, 1)
	r := mrand.New(mrand.NewPCG(1, 2))
	g.commit(0, 1, nil)
	g.commit(1, 3, nil)
	g.commit(0, 2, nil) // unmerged leaves from the adds before
	for range 12 {
		c := g.anyMember(r)
		var remove []LeafIndex
		if len(g.privs) > 3 && r.IntN(2) == 0 {
			for {
				v := g.anyMember(r)
				if v != c {
					remove = append(remove, v)
					break
				}
			}
		}
		g.commit(c, r.IntN(3), remove)
	}
	t.Logf("ended with %d members, %d leaves, epoch %d", len(g.privs), g.tree.numLeaves(), g.epoch)
}

func TestTreeAddRemoveShape(t *testing.T) {
	s := testSuite(t)
	rnd := newSeededReader(3)
	m := func() *LeafNode { return newTestMember(t, s, "x", rnd).leaf }
	tree, err := newRatchetTree(s, []*Node{{Leaf: m()}})
	if err != nil {
		t.Fatal(err)
	}
	for want := LeafIndex(1); want < 5; want++ {
		if got := tree.addLeaf(m()); got != want {
			t.Fatalf("add placed leaf at %d, want %d", got, want)
		}
	}
	if tree.numLeaves() != 8 || len(tree.encode()) != 9 {
		t.Fatalf("%d leaves, %d encoded nodes; want 8 and 9", tree.numLeaves(), len(tree.encode()))
	}
	tree.removeLeaf(1)
	if got := tree.addLeaf(m()); got != 1 {
		t.Fatalf("add after remove placed leaf at %d, want 1", got)
	}
	tree.removeLeaf(4)
	if tree.numLeaves() != 4 {
		t.Fatalf("after removing the last leaf: %d leaves, want 4", tree.numLeaves())
	}
	tree.removeLeaf(3)
	tree.removeLeaf(2)
	if tree.numLeaves() != 2 {
		t.Fatalf("%d leaves, want 2", tree.numLeaves())
	}
	tree.removeLeaf(1)
	if tree.numLeaves() != 1 || tree.leaf(0) == nil {
		t.Fatalf("%d leaves, want only leaf 0", tree.numLeaves())
	}
	if tree.leaf(5) != nil {
		t.Fatal("leaf out of range is not nil")
	}
}

func TestTreeCloneIsolation(t *testing.T) {
	g := newTestGroup(t, 4)
	g.commit(0, 3, nil)
	g.commit(2, 0, nil)
	g.tree.addLeaf(g.newMember().leaf) // leaves unmerged entries on shared parents
	orig := g.tree
	before := EncodeRatchetTree(orig.encode())
	hash := bytes.Clone(orig.treeHash())

	c := orig.clone()
	c.addLeaf(g.newMember().leaf)
	c.updateLeaf(1, g.newMember().leaf)
	c.removeLeaf(3)
	priv := g.privs[0].clone()
	if _, err := c.generatePath(priv, c.leaf(0), g.members[0].sig, g.id, g.rnd); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(EncodeRatchetTree(orig.encode()), before) || !bytes.Equal(orig.treeHash(), hash) {
		t.Fatal("changing the clone changed the original")
	}
	if err := orig.checkPrivate(g.privs[0]); err != nil {
		t.Fatalf("changing a cloned private state changed the original: %v", err)
	}
	// And the other way round.
	c2 := orig.clone()
	c2Enc := EncodeRatchetTree(c2.encode())
	orig.addLeaf(g.newMember().leaf)
	orig.removeLeaf(0)
	if !bytes.Equal(EncodeRatchetTree(c2.encode()), c2Enc) || !bytes.Equal(c2.treeHash(), hash) {
		t.Fatal("changing the original changed the clone")
	}
}

func TestTreeRejectsBadShapes(t *testing.T) {
	s := testSuite(t)
	rnd := newSeededReader(5)
	leaf := func() *Node { return &Node{Leaf: newTestMember(t, s, "x", rnd).leaf} }
	parent := func(unmerged ...LeafIndex) *Node {
		_, pub, _ := s.GenerateKeyPair(rnd)
		return &Node{Parent: &ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: unmerged}}
	}
	cases := []struct {
		name  string
		nodes []*Node
	}{
		{"empty", nil},
		{"even", []*Node{leaf(), nil}},
		{"trailing blank", []*Node{leaf(), nil, nil}},
		{"parent at leaf", []*Node{parent(), nil, leaf()}},
		{"leaf at parent", []*Node{leaf(), leaf(), leaf()}},
		{"both set", []*Node{{Leaf: leaf().Leaf, Parent: parent().Parent}}},
		{"unmerged not below", []*Node{leaf(), parent(), leaf(), nil, leaf(), parent(0), leaf()}},
		{"unmerged blank", []*Node{leaf(), parent(1), nil}[:1]},
		{"unmerged out of range", []*Node{leaf(), parent(7), leaf()}},
		{"unmerged twice", []*Node{leaf(), parent(1, 1), leaf()}},
		{"unmerged skipped below", []*Node{leaf(), parent(), leaf(), parent(1), leaf(), nil, leaf()}},
	}
	cases[7].nodes = []*Node{leaf(), parent(), leaf(), parent(2), nil, nil, leaf()}
	for _, c := range cases {
		if _, err := newRatchetTree(s, c.nodes); !errors.Is(err, ErrInvalidTree) {
			t.Errorf("%s: got %v, want ErrInvalidTree", c.name, err)
		}
	}
	ok := []*Node{leaf(), parent(1), leaf(), parent(1), leaf(), nil, leaf()}
	if _, err := newRatchetTree(s, ok); err != nil {
		t.Errorf("valid unmerged leaves rejected: %v", err)
	}
}

func TestValidateLeaf(t *testing.T) {
	g := newTestGroup(t, 6)
	g.commit(0, 3, nil)
	s, tree := g.s, g.tree
	parentKey := func() []byte {
		for i := 1; i < len(tree.nodes); i += 2 {
			if p := tree.nodes[i].parent; p != nil {
				return p.EncryptionKey
			}
		}
		t.Fatal("no parent node")
		return nil
	}()
	errCred := errors.New("unknown device")
	type tc struct {
		name     string
		src      LeafNodeSource
		idx      LeafIndex
		mutate   func(l *LeafNode) // applied before signing
		unsigned func(l *LeafNode) // applied after signing
		required *RequiredCapabilities
		validate CredentialValidator
		now      time.Time
		wantErr  error
	}
	cases := []tc{
		{name: "valid key package", src: LeafSourceKeyPackage, idx: 4},
		{name: "valid update", src: LeafSourceUpdate, idx: 1},
		{name: "valid commit", src: LeafSourceCommit, idx: 2},
		{name: "valid with required", src: LeafSourceKeyPackage, idx: 4,
			required: &RequiredCapabilities{Extensions: []ExtensionType{ExtRatchetTree}, Proposals: []ProposalType{ProposalRemove}, Credentials: []CredentialType{CredentialBasic}},
			validate: func(*Credential, []byte) error { return nil }},
		{name: "wrong source", src: LeafSourceUpdate, idx: 1, mutate: func(l *LeafNode) { l.Source = LeafSourceCommit; l.ParentHash = []byte{} }},
		{name: "bad signature", src: LeafSourceKeyPackage, idx: 4, unsigned: func(l *LeafNode) { l.Signature[0] ^= 1 }},
		{name: "signed for other leaf", src: LeafSourceUpdate, idx: 1, unsigned: func(l *LeafNode) {
			if err := signLeaf(s, l, g.members[1].sig, g.id, 2); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "expired", src: LeafSourceKeyPackage, idx: 4, now: time.Unix(4_000_000_001, 0)},
		{name: "not yet valid", src: LeafSourceKeyPackage, idx: 4, now: time.Unix(999_999, 0)},
		{name: "credential rejected", src: LeafSourceKeyPackage, idx: 4, validate: func(*Credential, []byte) error { return errCred }, wantErr: errCred},
		{name: "required extension", src: LeafSourceKeyPackage, idx: 4, required: &RequiredCapabilities{Extensions: []ExtensionType{0xff01}}},
		{name: "required proposal", src: LeafSourceKeyPackage, idx: 4, required: &RequiredCapabilities{Proposals: []ProposalType{0xff02}}},
		{name: "required credential", src: LeafSourceKeyPackage, idx: 4, required: &RequiredCapabilities{Credentials: []CredentialType{CredentialX509}}},
		{name: "no mls10", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) { l.Capabilities.Versions = []ProtocolVersion{2} }},
		{name: "no group suite", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) { l.Capabilities.CipherSuites = []CipherSuiteID{3} }},
		{name: "own credential unsupported", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) {
			l.Credential = Credential{Type: CredentialX509, Certificates: [][]byte{{1}}}
		}},
		{name: "members lack credential type", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) {
			l.Credential = Credential{Type: CredentialX509, Certificates: [][]byte{{1}}}
			l.Capabilities.Credentials = []CredentialType{CredentialBasic, CredentialX509}
		}},
		{name: "lacks members' credential type", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) {
			l.Credential = Credential{Type: CredentialX509, Certificates: [][]byte{{1}}}
			l.Capabilities.Credentials = []CredentialType{CredentialX509}
		}},
		{name: "extension not in capabilities", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) {
			l.Extensions = []Extension{{Type: 0xff03, Data: []byte{1}}}
		}},
		{name: "duplicate encryption key", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) { l.EncryptionKey = tree.leaf(2).EncryptionKey }},
		{name: "encryption key of a parent", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) { l.EncryptionKey = parentKey }},
		{name: "unchanged encryption key", src: LeafSourceUpdate, idx: 1, mutate: func(l *LeafNode) { l.EncryptionKey = tree.leaf(1).EncryptionKey }},
		{name: "duplicate signature key", src: LeafSourceKeyPackage, idx: 4, mutate: func(l *LeafNode) { l.SignatureKey = tree.leaf(3).SignatureKey }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := g.newMember()
			sig := m.sig
			if c.src != LeafSourceKeyPackage {
				sig = g.members[c.idx].sig
				m.leaf.SignatureKey = g.members[c.idx].leaf.SignatureKey
			}
			l := *m.leaf
			l.Source = c.src
			if c.src == LeafSourceCommit {
				l.ParentHash = []byte{}
			}
			if c.mutate != nil {
				c.mutate(&l)
			}
			if c.name == "duplicate signature key" {
				sig = g.members[3].sig
			}
			if err := signLeaf(s, &l, sig, g.id, c.idx); err != nil {
				t.Fatal(err)
			}
			if c.unsigned != nil {
				c.unsigned(&l)
			}
			now := c.now
			if now.IsZero() {
				now = testNow
			}
			err := tree.validateLeaf(&l, c.src, g.id, c.idx, now, c.required, c.validate)
			if len(c.name) > 5 && c.name[:5] == "valid" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			want := c.wantErr
			if want == nil {
				want = ErrInvalidLeaf
			}
			if !errors.Is(err, want) || !errors.Is(err, ErrInvalidLeaf) {
				t.Fatalf("got %v, want %v", err, want)
			}
		})
	}
	l := g.newMember().leaf
	if err := leafSupportsGroupExtensions(l, []Extension{{Type: ExtExternalSenders}}); err != nil {
		t.Errorf("default extension reported unsupported: %v", err)
	}
	if err := leafSupportsGroupExtensions(l, []Extension{{Type: 0xff04}}); !errors.Is(err, ErrInvalidLeaf) {
		t.Errorf("unsupported group extension: got %v", err)
	}
}

func TestTreeKEMRejectsBadPaths(t *testing.T) {
	g := newTestGroup(t, 7)
	g.commit(0, 4, nil)
	base := g.tree
	ctree := base.clone()
	cpriv := g.privs[0].clone()
	pending, err := ctree.generatePath(cpriv, ctree.leaf(0), g.members[0].sig, g.id, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testGroupContext(g.s, g.id, 9, ctree)
	path, _, err := pending.encrypt(ctree, ctx, nil, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	try := func(name string, mutate func(p *UpdatePath), merged bool, wantErr error) {
		t.Helper()
		p, err := DecodeUpdatePath(path.Encode())
		if err != nil {
			t.Fatal(err)
		}
		mutate(p)
		rt := base.clone()
		err = rt.mergePath(0, p, g.id)
		if !merged {
			if !errors.Is(err, wantErr) {
				t.Errorf("%s: merge got %v, want %v", name, err, wantErr)
			}
			if !bytes.Equal(rt.treeHash(), base.treeHash()) {
				t.Errorf("%s: failed merge changed the tree", name)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: merge: %v", name, err)
		}
		priv := g.privs[3].clone()
		before := priv.clone()
		_, err = rt.decryptPath(priv, 0, p, testGroupContext(g.s, g.id, 9, rt), nil)
		if !errors.Is(err, wantErr) {
			t.Errorf("%s: decrypt got %v, want %v", name, err, wantErr)
		}
		if len(priv.keys) != len(before.keys) {
			t.Errorf("%s: failed decrypt changed the private state", name)
		}
	}
	try("too few nodes", func(p *UpdatePath) { p.Nodes = p.Nodes[:len(p.Nodes)-1] }, false, ErrInvalidPath)
	try("bad leaf signature", func(p *UpdatePath) { p.LeafNode.Signature[3] ^= 1 }, false, ErrInvalidLeaf)
	try("swapped node key", func(p *UpdatePath) { p.Nodes[0].EncryptionKey = p.Nodes[1].EncryptionKey }, false, ErrParentHash)
	try("wrong ciphertext count", func(p *UpdatePath) {
		p.Nodes[1].EncryptedPathSecret = append(p.Nodes[1].EncryptedPathSecret, p.Nodes[1].EncryptedPathSecret[0])
	}, true, ErrInvalidPath)
	try("corrupt ciphertext", func(p *UpdatePath) {
		for i := range p.Nodes {
			for j := range p.Nodes[i].EncryptedPathSecret {
				p.Nodes[i].EncryptedPathSecret[j].Ciphertext[0] ^= 1
			}
		}
	}, true, ErrDecrypt)

	// Wrong group context: decryption fails.
	rt := base.clone()
	if err := rt.mergePath(0, path, g.id); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.decryptPath(g.privs[3].clone(), 0, path, []byte("other context"), nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong group context: got %v", err)
	}
	// Own path and a member whose leaf was excluded.
	if _, err := rt.decryptPath(g.privs[0].clone(), 0, path, ctx, nil); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("own path: got %v", err)
	}
	// A path secret that does not match the tree is refused on install.
	priv := newTreePrivate(3, g.privs[3].keys[LeafIndex(3).node()])
	if err := ctree.installPathSecret(priv, commonAncestor(0, LeafIndex(3).node()), make([]byte, g.s.Nh())); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("wrong path secret installed: %v", err)
	}
	if err := ctree.installPathSecret(priv, LeafIndex(3).node(), make([]byte, g.s.Nh())); !errors.Is(err, ErrPrivateState) {
		t.Errorf("path secret for a leaf installed: %v", err)
	}
	// Inconsistent private state is reported.
	bad := g.privs[3].clone()
	bad.keys[base.root()] = g.privs[3].keys[LeafIndex(3).node()]
	if err := base.checkPrivate(bad); !errors.Is(err, ErrPrivateState) {
		t.Errorf("inconsistent private state: got %v", err)
	}
}

func FuzzRatchetTree(f *testing.F) {
	type tc struct {
		Tree hexBytes `json:"tree"`
	}
	for i, c := range loadVectors[tc](f, "tree-validation.json") {
		if i%7 == 0 {
			f.Add([]byte(c.Tree))
		}
	}
	s := testSuite(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		nodes, err := DecodeRatchetTree(b)
		if err != nil {
			return
		}
		tree, err := newRatchetTree(s, nodes)
		if err != nil {
			if !errors.Is(err, ErrInvalidTree) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if got := EncodeRatchetTree(tree.encode()); !bytes.Equal(got, b) {
			t.Fatal("tree does not round-trip")
		}
		_ = tree.treeHash()
		_ = tree.verifyParentHashes()
		_ = tree.verifyLeafSignatures([]byte("g"))
		_ = tree.resolution(tree.root())
		c := tree.clone()
		c.removeLeaf(0)
		if !bytes.Equal(EncodeRatchetTree(tree.encode()), b) {
			t.Fatal("clone shares state")
		}
	})
}

// benchTree builds a tree of n leaves where every node is set (as after
// every member has committed), with real keys and valid parent hashes
// (each parent justified by its left child), and the private states of
// the committer (leaf 0) and a receiver (last leaf).
func benchTree(b *testing.B, n int) (tree *ratchetTree, committer, receiver *treePrivate, sig SignaturePrivateKey) {
	s := testSuite(b)
	rnd := newSeededReader(uint64(n))
	nodes := make([]*Node, nodeWidth(uint32(n)))
	privs := make([][]byte, len(nodes))
	sigs := make([]SignaturePrivateKey, len(nodes))
	for i := range nodes {
		x := NodeIndex(i)
		if x.isLeaf() {
			m := newTestMember(b, s, fmt.Sprint(i), rnd)
			nodes[i] = &Node{Leaf: m.leaf}
			privs[i], sigs[i] = m.encPriv, m.sig
			continue
		}
		seed := sha256.Sum256([]byte(fmt.Sprint("node", i)))
		sk, pk, err := s.DeriveKeyPair(seed[:])
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = &Node{Parent: &ParentNode{EncryptionKey: pk, ParentHash: []byte{}, UnmergedLeaves: []LeafIndex{}}}
		privs[i] = sk
	}
	tree, err := newRatchetTree(s, nodes)
	if err != nil {
		b.Fatal(err)
	}
	var finalize func(x NodeIndex, ph []byte)
	finalize = func(x NodeIndex, ph []byte) {
		if tree.nodes[x].blank() {
			if !x.isLeaf() {
				finalize(x.right(), nil)
				finalize(x.left(), nil)
			}
			return
		}
		if x.isLeaf() {
			if ph == nil {
				return
			}
			l := *tree.nodes[x].leaf
			l.Source, l.ParentHash = LeafSourceCommit, ph
			if err := signLeaf(s, &l, sigs[x], []byte("group"), x.leaf()); err != nil {
				b.Fatal(err)
			}
			tree.setNode(x, treeNode{leaf: &l})
			return
		}
		p := *tree.nodes[x].parent
		p.ParentHash = ph
		if ph == nil {
			p.ParentHash = []byte{}
		}
		tree.setNode(x, treeNode{parent: &p})
		finalize(x.right(), nil)
		finalize(x.left(), tree.parentHash(x, x.left()))
	}
	finalize(tree.root(), nil)
	if err := tree.verifyParentHashes(); err != nil {
		b.Fatal(err)
	}
	mk := func(l LeafIndex) *treePrivate {
		p := &treePrivate{leaf: l, keys: map[NodeIndex][]byte{}}
		for x := range privs {
			if isAncestor(NodeIndex(x), l.node()) {
				p.keys[NodeIndex(x)] = privs[x]
			}
		}
		return p
	}
	_ = tree.treeHash()
	return tree, mk(0), mk(LeafIndex(n - 1)), sigs[0]
}

var benchSizes = []int{1000, 10000}

func BenchmarkTreeHashAfterPathChange(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tree, _, _, _ := benchTree(b, n)
			l := tree.leaf(5)
			for b.Loop() {
				tree.updateLeaf(5, l)
				_ = tree.treeHash()
			}
		})
	}
}

func BenchmarkTreeHashFull(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tree, _, _, _ := benchTree(b, n)
			for b.Loop() {
				c := tree.clone()
				for i := range c.nodes {
					c.nodes[i].hash = nil
				}
				_ = c.treeHash()
			}
		})
	}
}

func BenchmarkTreeKEMCommit(b *testing.B) {
	for _, n := range benchSizes {
		tree, cpriv, rpriv, sig := benchTree(b, n)
		s, id := tree.suite, []byte("group")
		var path *UpdatePath
		var ctx []byte
		b.Run(fmt.Sprint("generate+encrypt/", n), func(b *testing.B) {
			for b.Loop() {
				c := tree.clone()
				p, err := c.generatePath(cpriv.clone(), c.leaf(0), sig, id, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				ctx = testGroupContext(s, id, 1, c)
				if path, _, err = p.encrypt(c, ctx, nil, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprint("merge+decrypt/", n), func(b *testing.B) {
			for b.Loop() {
				c := tree.clone()
				if err := c.mergePath(0, path, id); err != nil {
					b.Fatal(err)
				}
				if _, err := c.decryptPath(rpriv.clone(), 0, path, testGroupContext(s, id, 1, c), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprint("verifyParentHashes/", n), func(b *testing.B) {
			for b.Loop() {
				if err := tree.verifyParentHashes(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprint("verifyLeafSignatures/", n), func(b *testing.B) {
			for b.Loop() {
				if err := tree.verifyLeafSignatures(id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
