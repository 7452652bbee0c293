package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func decodeTestTree(t testing.TB, s *CipherSuite, b []byte) *ratchetTree {
	t.Helper()
	nodes, err := DecodeRatchetTree(b)
	if err != nil {
		t.Fatalf("decoding tree: %v", err)
	}
	tree, err := newRatchetTree(s, nodes)
	if err != nil {
		t.Fatalf("building tree: %v", err)
	}
	return tree
}

func TestTreeValidationVectors(t *testing.T) {
	type tc struct {
		CipherSuite uint16     `json:"cipher_suite"`
		Tree        hexBytes   `json:"tree"`
		GroupID     hexBytes   `json:"group_id"`
		Resolutions [][]uint32 `json:"resolutions"`
		TreeHashes  []hexBytes `json:"tree_hashes"`
	}
	tally := newTally(t, "tree-validation.json")
	for i, c := range loadVectors[tc](t, "tree-validation.json") {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		tree := decodeTestTree(t, s, c.Tree)
		if len(c.Resolutions) > len(tree.nodes) || len(c.TreeHashes) != len(c.Resolutions) {
			t.Fatalf("case %d: %d resolutions, %d hashes for %d nodes", i, len(c.Resolutions), len(c.TreeHashes), len(tree.nodes))
		}
		for x, want := range c.Resolutions {
			got := tree.resolution(NodeIndex(x))
			if len(got) != len(want) {
				t.Errorf("case %d node %d: resolution %v, want %v", i, x, got, want)
				continue
			}
			for k := range got {
				if uint32(got[k]) != want[k] {
					t.Errorf("case %d node %d: resolution %v, want %v", i, x, got, want)
					break
				}
			}
		}
		for x, want := range c.TreeHashes {
			if got := tree.nodeHash(NodeIndex(x)); !bytes.Equal(got, want) {
				t.Errorf("case %d node %d: tree hash %x, want %x", i, x, got, want)
			}
		}
		if err := tree.verifyParentHashes(); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
		if err := tree.verifyLeafSignatures(c.GroupID); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
		// Negative checks on the same tree: another group ID breaks the
		// commit leaves' signatures; a flipped parent hash breaks the chain.
		if err := tree.verifyLeafSignatures(append([]byte("x"), c.GroupID...)); !errors.Is(err, ErrInvalidLeaf) {
			t.Errorf("case %d: leaf signatures verified under a wrong group id: %v", i, err)
		}
		for x := range tree.nodes {
			p := tree.nodes[x].parent
			if p == nil || len(p.ParentHash) == 0 {
				continue
			}
			bad := tree.clone()
			np := *p
			np.ParentHash = slices.Clone(p.ParentHash)
			np.ParentHash[0] ^= 1
			bad.setNode(NodeIndex(x), treeNode{parent: &np})
			if err := bad.verifyParentHashes(); !errors.Is(err, ErrParentHash) {
				t.Errorf("case %d: corrupt parent hash at node %d accepted: %v", i, x, err)
			}
			break
		}
	}
	tally.done()
}

func TestTreeOperationsVectors(t *testing.T) {
	type tc struct {
		CipherSuite    uint16   `json:"cipher_suite"`
		TreeBefore     hexBytes `json:"tree_before"`
		Proposal       hexBytes `json:"proposal"`
		ProposalSender uint32   `json:"proposal_sender"`
		TreeHashBefore hexBytes `json:"tree_hash_before"`
		TreeAfter      hexBytes `json:"tree_after"`
		TreeHashAfter  hexBytes `json:"tree_hash_after"`
	}
	tally := newTally(t, "tree-operations.json")
	for i, c := range loadVectors[tc](t, "tree-operations.json") {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		tree := decodeTestTree(t, s, c.TreeBefore)
		if got := tree.treeHash(); !bytes.Equal(got, c.TreeHashBefore) {
			t.Errorf("case %d: tree hash before %x, want %x", i, got, c.TreeHashBefore)
		}
		before := tree.clone()
		p, err := DecodeProposal(c.Proposal)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		switch p.Type {
		case ProposalAdd:
			tree.addLeaf(&p.Add.KeyPackage.LeafNode)
		case ProposalUpdate:
			tree.updateLeaf(LeafIndex(c.ProposalSender), &p.Update.LeafNode)
		case ProposalRemove:
			tree.removeLeaf(p.Remove.Removed)
		default:
			t.Fatalf("case %d: unexpected proposal type %d", i, p.Type)
		}
		if got := EncodeRatchetTree(tree.encode()); !bytes.Equal(got, c.TreeAfter) {
			t.Errorf("case %d (%d): tree after differs", i, p.Type)
		}
		if got := tree.treeHash(); !bytes.Equal(got, c.TreeHashAfter) {
			t.Errorf("case %d (%d): tree hash after %x, want %x", i, p.Type, got, c.TreeHashAfter)
		}
		// The cached hashes must equal a fresh computation.
		fresh := decodeTestTree(t, s, c.TreeAfter)
		if !bytes.Equal(fresh.treeHash(), tree.treeHash()) {
			t.Errorf("case %d: cached tree hash differs from a fresh one", i)
		}
		if got := EncodeRatchetTree(before.encode()); !bytes.Equal(got, c.TreeBefore) {
			t.Errorf("case %d: operation on the tree changed its clone", i)
		}
	}
	tally.done()
}

type treekemVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

func TestTreeKEMVectors(t *testing.T) {
	tally := newTally(t, "treekem.json")
	for i, c := range loadVectors[treekemVector](t, "treekem.json") {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { runTreeKEMVector(t, s, &c) })
	}
	tally.done()
}

func runTreeKEMVector(t *testing.T, s *CipherSuite, c *treekemVector) {
	tree := decodeTestTree(t, s, c.RatchetTree)
	privs := map[LeafIndex]*treePrivate{}
	sigs := map[LeafIndex]SignaturePrivateKey{}
	for _, lp := range c.LeavesPrivate {
		priv := newTreePrivate(LeafIndex(lp.Index), lp.EncryptionPriv)
		for _, ps := range lp.PathSecrets {
			sk, _, err := tree.nodeKeyPair(ps.PathSecret)
			if err != nil {
				t.Fatal(err)
			}
			priv.keys[NodeIndex(ps.Node)] = sk
		}
		if err := tree.checkPrivate(priv); err != nil {
			t.Fatalf("leaf %d: %v", lp.Index, err)
		}
		privs[priv.leaf] = priv
		sigs[priv.leaf] = SignaturePrivateKey(lp.SignaturePriv)
	}
	groupContext := func(tr *ratchetTree) []byte {
		gc := GroupContext{Version: ProtocolMLS10, CipherSuite: s.ID, GroupID: c.GroupID, Epoch: c.Epoch,
			TreeHash: tr.treeHash(), ConfirmedTranscriptHash: c.ConfirmedTranscriptHash}
		return gc.Encode()
	}
	receivers := func(sender LeafIndex) []LeafIndex {
		var out []LeafIndex
		for j := LeafIndex(0); uint32(j) < tree.numLeaves(); j++ {
			if j != sender && tree.leaf(j) != nil {
				out = append(out, j)
			}
		}
		return out
	}
	for _, u := range c.UpdatePaths {
		sender := LeafIndex(u.Sender)
		path, err := DecodeUpdatePath(u.UpdatePath)
		if err != nil {
			t.Fatal(err)
		}
		merged := tree.clone()
		if err := merged.mergePath(sender, path, c.GroupID); err != nil {
			t.Fatalf("sender %d: merging: %v", sender, err)
		}
		if got := merged.treeHash(); !bytes.Equal(got, u.TreeHashAfter) {
			t.Errorf("sender %d: tree hash after %x, want %x", sender, got, u.TreeHashAfter)
		}
		if err := merged.verifyParentHashes(); err != nil {
			t.Errorf("sender %d: merged tree: %v", sender, err)
		}
		ctx := groupContext(merged)
		for _, j := range receivers(sender) {
			priv, ok := privs[j]
			if !ok {
				t.Fatalf("no private state for leaf %d", j)
			}
			priv = priv.clone()
			ps, commit, err := merged.decryptPathSecret(priv, sender, path, ctx, nil)
			if err != nil {
				t.Fatalf("sender %d, receiver %d: %v", sender, j, err)
			}
			if !bytes.Equal(ps, u.PathSecrets[j]) {
				t.Errorf("sender %d, receiver %d: path secret %x, want %x", sender, j, ps, u.PathSecrets[j])
			}
			if !bytes.Equal(commit, u.CommitSecret) {
				t.Errorf("sender %d, receiver %d: commit secret %x, want %x", sender, j, commit, u.CommitSecret)
			}
			if err := merged.checkPrivate(priv); err != nil {
				t.Errorf("sender %d, receiver %d: after decrypting: %v", sender, j, err)
			}
		}
		// A path whose leaf carries another parent hash is refused and
		// leaves the tree alone.
		bad := *path
		bad.LeafNode.ParentHash = append([]byte{1}, path.LeafNode.ParentHash...)
		untouched := tree.clone()
		if err := untouched.mergePath(sender, &bad, c.GroupID); err == nil {
			t.Errorf("sender %d: path with a wrong leaf parent hash merged", sender)
		}
		if !bytes.Equal(untouched.treeHash(), tree.treeHash()) {
			t.Errorf("sender %d: failed merge changed the tree", sender)
		}

		// Make a new path as this sender and have everyone process it.
		committer := tree.clone()
		cpriv := privs[sender].clone()
		pending, err := committer.generatePath(cpriv, tree.leaf(sender), sigs[sender], c.GroupID, rand.Reader)
		if err != nil {
			t.Fatalf("sender %d: generating path: %v", sender, err)
		}
		if err := committer.checkPrivate(cpriv); err != nil {
			t.Errorf("sender %d: committer state: %v", sender, err)
		}
		if err := committer.verifyParentHashes(); err != nil {
			t.Errorf("sender %d: committer tree: %v", sender, err)
		}
		cctx := groupContext(committer)
		newPath, commit, err := pending.encrypt(committer, cctx, nil, rand.Reader)
		if err != nil {
			t.Fatalf("sender %d: encrypting path: %v", sender, err)
		}
		wire, err := DecodeUpdatePath(newPath.Encode())
		if err != nil {
			t.Fatalf("sender %d: new path does not round-trip: %v", sender, err)
		}
		for _, j := range receivers(sender) {
			rt := tree.clone()
			if err := rt.mergePath(sender, wire, c.GroupID); err != nil {
				t.Fatalf("sender %d, receiver %d: merging new path: %v", sender, j, err)
			}
			if !bytes.Equal(rt.treeHash(), committer.treeHash()) {
				t.Fatalf("sender %d, receiver %d: tree hash differs from the committer's", sender, j)
			}
			got, err := rt.decryptPath(privs[j].clone(), sender, wire, groupContext(rt), nil)
			if err != nil {
				t.Fatalf("sender %d, receiver %d: decrypting new path: %v", sender, j, err)
			}
			if !bytes.Equal(got, commit) {
				t.Errorf("sender %d, receiver %d: commit secret differs from the committer's", sender, j)
			}
		}
	}
}
