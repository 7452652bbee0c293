package mls

import (
	"bytes"
	"fmt"
	"time"
)

// Join enters a group from a Welcome (RFC 9420 section 12.4.3.1). tree is
// the ratchet tree when the Welcome's GroupInfo does not carry one; nil
// otherwise.
func Join(cfg Config, welcome *MLSMessage, self *KeyPackageBundle, tree []*Node) (*Group, error) {
	if welcome == nil || welcome.WireFormat != WireWelcome || welcome.Welcome == nil {
		return nil, fmt.Errorf("%w: not a welcome message", ErrInvalidWelcome)
	}
	w := welcome.Welcome
	s, err := Suite(self.KeyPackage.CipherSuite)
	if err != nil {
		return nil, err
	}
	if w.CipherSuite != s.ID {
		return nil, fmt.Errorf("%w: cipher suite %d, key package suite %d", ErrInvalidWelcome, w.CipherSuite, s.ID)
	}
	gs, err := s.decryptGroupSecrets(self.InitPriv, s.keyPackageRef(self.KeyPackage), w)
	if err != nil {
		return nil, fmt.Errorf("joining: %w", err)
	}
	// A provisional group resolves PSKs (external only: a joiner holds no
	// resumption secrets of this group).
	g := &Group{cfg: cfg, suite: s, resumption: map[uint64][]byte{}, active: true, sigPriv: self.SignaturePriv.Expanded()}
	for _, id := range gs.PSKs {
		if id.Type != PSKExternal {
			return nil, fmt.Errorf("joining: %w: resumption psk in welcome", ErrMissingPSK)
		}
	}
	psks, err := g.resolvePSKs(gs.PSKs)
	if err != nil {
		return nil, fmt.Errorf("joining: %w", err)
	}
	pskSecret := s.pskSecret(psks)
	gi, err := s.decryptGroupInfo(s.welcomeSecret(gs.JoinerSecret, pskSecret), w)
	if err != nil {
		return nil, fmt.Errorf("joining: %w", err)
	}
	if gi.GroupContext.Version != ProtocolMLS10 {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidWelcome, gi.GroupContext.Version)
	}

	nodes := tree
	if data, ok := findExtension(gi.Extensions, ExtRatchetTree); ok {
		if nodes, err = DecodeRatchetTree(data); err != nil {
			return nil, fmt.Errorf("%w: ratchet tree: %w", ErrInvalidWelcome, err)
		}
	}
	if nodes == nil {
		return nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidWelcome)
	}
	rt, err := newRatchetTree(s, nodes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	signer := rt.leaf(gi.Signer)
	if signer == nil {
		return nil, fmt.Errorf("%w: group info signer %d is not a member", ErrInvalidWelcome, gi.Signer)
	}
	if err := s.verifyGroupInfo(signer.SignatureKey, gi); err != nil {
		return nil, fmt.Errorf("%w: group info: %w", ErrInvalidWelcome, err)
	}
	if !bytes.Equal(rt.treeHash(), gi.GroupContext.TreeHash) {
		return nil, fmt.Errorf("%w: tree hash does not match the group context", ErrInvalidWelcome)
	}
	if err := rt.verifyParentHashes(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	required, err := requiredCapabilities(gi.GroupContext.Extensions)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	now := cfg.now()
	myLeaf, found := LeafIndex(0), false
	for i := LeafIndex(0); uint32(i) < rt.numLeaves(); i++ {
		l := rt.leaf(i)
		if l == nil {
			continue
		}
		own := bytes.Equal(l.EncryptionKey, self.KeyPackage.LeafNode.EncryptionKey) &&
			bytes.Equal(l.SignatureKey, self.KeyPackage.LeafNode.SignatureKey)
		// Lifetimes are checked only for our own leaf: other members'
		// key package leaves may have expired since they joined.
		at := time.Time{}
		if own {
			at = now
			myLeaf, found = i, true
		}
		if err := rt.validateLeaf(l, l.Source, gi.GroupContext.GroupID, i, at, required, cfg.ValidateCredential); err != nil {
			return nil, fmt.Errorf("%w: leaf %d: %w", ErrInvalidWelcome, i, err)
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: own leaf not in the tree", ErrInvalidWelcome)
	}
	g.tree = rt
	g.priv = &treePrivate{leaf: myLeaf, keys: map[NodeIndex][]byte{myLeaf.node(): self.EncryptionPriv}}
	if gs.PathSecret != nil {
		signerLeaf := gi.Signer
		if err := rt.installPathSecret(g.priv, commonAncestor(myLeaf.node(), signerLeaf.node()), gs.PathSecret); err != nil {
			return nil, fmt.Errorf("%w: path secret: %w", ErrInvalidWelcome, err)
		}
	}
	g.ctx = gi.GroupContext
	g.secrets = s.deriveEpoch(gs.JoinerSecret, pskSecret, &g.ctx)
	if err := s.verifyConfirmationTag(g.secrets.confirmation, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	g.interim = s.interimTranscriptHash(g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	g.secretTree = newSecretTree(s, g.secrets.encryption, rt.numLeaves())
	g.rememberResumption(g.ctx.Epoch, g.secrets.resumption)
	return g, nil
}
