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

	var myLeaf LeafIndex
	found := false
	rt, err := verifiedTree(cfg, s, gi, tree, func(i LeafIndex, l *LeafNode) bool {
		own := bytes.Equal(l.EncryptionKey, self.KeyPackage.LeafNode.EncryptionKey) &&
			bytes.Equal(l.SignatureKey, self.KeyPackage.LeafNode.SignatureKey)
		if own {
			myLeaf, found = i, true
		}
		return own
	})
	if err != nil {
		return nil, err
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

// verifiedTree builds the ratchet tree of a GroupInfo (from its
// ratchet_tree extension, else from tree) and checks it as a joiner must
// (RFC 9420 section 12.4.3.1): the GroupInfo signature by its signer, the
// tree hash against the group context, parent hashes and every leaf.
// Lifetimes are checked only for the leaves own reports as the joiner's:
// other members' key package leaves may have expired since they joined.
func verifiedTree(cfg Config, s *CipherSuite, gi *GroupInfo, tree []*Node, own func(LeafIndex, *LeafNode) bool) (*ratchetTree, error) {
	nodes := tree
	if data, ok := findExtension(gi.Extensions, ExtRatchetTree); ok {
		var err error
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
	for i, l := range rt.leaves() {
		at := time.Time{}
		if own(i, l) {
			at = now
		}
		if err := rt.validateLeaf(l, l.Source, gi.GroupContext.GroupID, i, at, required, cfg.ValidateCredential); err != nil {
			return nil, fmt.Errorf("%w: leaf %d: %w", ErrInvalidWelcome, i, err)
		}
	}
	return rt, nil
}

// ExternalJoinOptions shape an external commit.
type ExternalJoinOptions struct {
	// RemoveLeaf, when set, removes this client's old leaf (a device that
	// lost its group state rejoins this way); it must hold the same
	// credential.
	RemoveLeaf *LeafIndex
	// Capabilities of the new leaf; nil means DefaultCapabilities.
	Capabilities *Capabilities
}

// ExternalJoin joins a group without a Welcome (RFC 9420 section
// 12.4.3.2) from a GroupInfo that carries the external_pub extension (and
// the ratchet tree, unless tree is given). It returns the joiner's group
// in the new epoch and the commit to send; the group is valid only once
// the delivery service accepts the commit.
func ExternalJoin(cfg Config, gi *GroupInfo, tree []*Node, cred Credential, sigPriv SignaturePrivateKey, opts ExternalJoinOptions) (*Group, *MLSMessage, error) {
	s, err := Suite(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	data, ok := findExtension(gi.Extensions, ExtExternalPub)
	if !ok {
		return nil, nil, fmt.Errorf("%w: group info has no external_pub", ErrInvalidWelcome)
	}
	externalPub, err := decodeAll(data, "external_pub", func(r *reader) []byte { return r.opaque("external_pub") })
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	rt, err := verifiedTree(cfg, s, gi, tree, func(LeafIndex, *LeafNode) bool { return false })
	if err != nil {
		return nil, nil, err
	}
	kemOutput, initSecret, err := s.hpkeExport(externalPub, nil, "MLS 1.0 external init secret", s.Nh())
	if err != nil {
		return nil, nil, fmt.Errorf("external init: %w", err)
	}
	// The joiner's view of the current epoch, before its commit.
	g := &Group{
		cfg: cfg, suite: s, ctx: gi.GroupContext, tree: rt, sigPriv: sigPriv.Expanded(),
		interim:    s.interimTranscriptHash(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag),
		resumption: map[uint64][]byte{}, active: true,
	}
	self := Sender{Type: SenderNewMemberCommit}
	items := []proposalItem{{proposal: &Proposal{Type: ProposalExternalInit, ExternalInit: &ExternalInitProposal{KEMOutput: kemOutput}}, sender: self}}
	if opts.RemoveLeaf != nil {
		old := rt.leaf(*opts.RemoveLeaf)
		if old == nil || !bytes.Equal(encode(&old.Credential), encode(&cred)) {
			return nil, nil, fmt.Errorf("%w: leaf %d is not this client's", ErrInvalidProposal, *opts.RemoveLeaf)
		}
		items = append(items, proposalItem{proposal: &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: *opts.RemoveLeaf}}, sender: self})
	}
	g.priv = &treePrivate{leaf: noLeaf, keys: map[NodeIndex][]byte{}}
	prov, err := g.applyProposals(items, self)
	if err != nil {
		return nil, nil, fmt.Errorf("making external commit: %w", err)
	}
	caps := DefaultCapabilities(s)
	if opts.Capabilities != nil {
		caps = *opts.Capabilities
	}
	// A placeholder leaf marks the joiner's place; generatePath replaces
	// it with the signed commit leaf.
	encPriv, encPub, err := s.GenerateKeyPair(cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	placeholder := &LeafNode{EncryptionKey: encPub, SignatureKey: sigPriv.PublicKey(), Credential: cred, Capabilities: caps, Source: LeafSourceKeyPackage}
	leaf := prov.tree.addLeaf(placeholder)
	priv := newTreePrivate(leaf, encPriv)
	pending, err := prov.tree.generatePath(priv, &LeafNode{Credential: cred, Capabilities: caps}, g.sigPriv, gi.GroupContext.GroupID, cfg.rand())
	if err != nil {
		return nil, nil, fmt.Errorf("making external commit: %w", err)
	}
	newCtx := g.provisionalContext(prov.exts)
	newCtx.TreeHash = prov.tree.treeHash()
	path, commitSecret, err := pending.encrypt(prov.tree, encode(&newCtx), nil, cfg.rand())
	if err != nil {
		return nil, nil, fmt.Errorf("making external commit: %w", err)
	}
	commit := &Commit{Path: path}
	for _, it := range items {
		commit.Proposals = append(commit.Proposals, ProposalOrRef{Proposal: it.proposal})
	}
	ac := &AuthenticatedContent{
		WireFormat: WirePublicMessage,
		Content: FramedContent{
			GroupID: gi.GroupContext.GroupID, Epoch: gi.GroupContext.Epoch, Sender: self,
			ContentType: ContentCommit, Commit: commit,
		},
	}
	if err := signFramedContent(s, g.sigPriv, ac, &g.ctx); err != nil {
		return nil, nil, fmt.Errorf("signing external commit: %w", err)
	}
	_, _, secrets, err := g.advanceSchedule(&newCtx, ac, prov, initSecret, commitSecret)
	if err != nil {
		return nil, nil, err
	}
	ac.Auth.ConfirmationTag = s.confirmationTag(secrets.confirmation, newCtx.ConfirmedTranscriptHash)
	pub, err := protectPublic(s, ac, nil, &g.ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("framing external commit: %w", err)
	}
	next := g.successor(prov.tree, priv, newCtx, secrets, ac.Auth.ConfirmationTag)
	return next, &MLSMessage{Version: ProtocolMLS10, WireFormat: WirePublicMessage, Public: pub}, nil
}
