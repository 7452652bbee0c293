package mls

import (
	"bytes"
	"fmt"
	"io"
	"maps"
)

// CommitOptions say what a commit does. The zero value commits the
// proposals received in this epoch and refreshes the committer's path.
type CommitOptions struct {
	// Add lists key packages of members to add.
	Add []*KeyPackage
	// Remove lists leaves to remove.
	Remove []LeafIndex
	// ExternalPSKs are injected into the key schedule by ID.
	ExternalPSKs [][]byte
	// Extensions, when non-nil, replaces the group context extensions.
	Extensions []Extension
	// IgnorePending leaves out the proposals received in this epoch.
	IgnorePending bool
	// NoPath omits the update path when no proposal requires one.
	NoPath bool
	// WelcomeWithoutTree leaves the ratchet tree out of the Welcome's
	// GroupInfo; the joiner must then get it another way.
	WelcomeWithoutTree bool
}

// PendingCommit is a commit made by this member but not yet applied: the
// delivery service accepts one commit per epoch, so the member applies its
// own commit only once the server has accepted it.
type PendingCommit struct {
	// Commit is the PublicMessage to send to the group.
	Commit *MLSMessage
	// Welcome is for the added members; nil if none were added.
	Welcome *MLSMessage
	// Added lists the leaves the new members will occupy.
	Added []LeafIndex
	// Removed lists the removed leaves.
	Removed []LeafIndex

	epoch uint64
	next  *Group
}

// Epoch is the epoch the commit was made in.
func (p *PendingCommit) Epoch() uint64 { return p.epoch }

// Commit makes a commit for this epoch (RFC 9420 section 12.4.1). The
// group is unchanged until ApplyCommit.
func (g *Group) Commit(opts CommitOptions) (*PendingCommit, error) {
	if !g.active || g.reinit != nil {
		return nil, ErrInactive
	}
	s := g.suite
	rnd := g.cfg.rand()
	self := Sender{Type: SenderMember, LeafIndex: g.priv.leaf}

	var refs []ProposalOrRef
	var items []proposalItem
	if !opts.IgnorePending {
		for _, cp := range g.proposals {
			// Leave out proposals this commit cannot carry: the
			// committer's own update, and its own removal (another
			// member commits that).
			if cp.proposal.Type == ProposalUpdate && cp.sender.Type == SenderMember && cp.sender.LeafIndex == g.priv.leaf {
				continue
			}
			if cp.proposal.Type == ProposalRemove && cp.proposal.Remove.Removed == g.priv.leaf {
				continue
			}
			refs = append(refs, ProposalOrRef{Reference: cp.ref})
			items = append(items, proposalItem{proposal: cp.proposal, sender: cp.sender, ref: cp.ref})
		}
	}
	inline := func(p *Proposal) {
		refs = append(refs, ProposalOrRef{Proposal: p})
		items = append(items, proposalItem{proposal: p, sender: self})
	}
	if opts.Extensions != nil {
		inline(&Proposal{Type: ProposalGroupContextExtensions, GroupContextExtensions: opts.Extensions})
	}
	for _, r := range opts.Remove {
		inline(&Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: r}})
	}
	for _, kp := range opts.Add {
		inline(&Proposal{Type: ProposalAdd, Add: &AddProposal{KeyPackage: *kp}})
	}
	for _, id := range opts.ExternalPSKs {
		nonce := make([]byte, s.Nh())
		if _, err := io.ReadFull(rnd, nonce); err != nil {
			return nil, fmt.Errorf("making psk nonce: %w", err)
		}
		inline(&Proposal{Type: ProposalPSK, PSK: &PreSharedKeyID{Type: PSKExternal, ExternalID: id, Nonce: nonce}})
	}

	prov, err := g.applyProposals(items, self)
	if err != nil {
		return nil, fmt.Errorf("making commit: %w", err)
	}
	tree := prov.tree
	priv := g.priv.clone()
	newCtx := g.provisionalContext(prov.exts)

	commit := &Commit{Proposals: refs}
	var commitSecret []byte
	var pending *pendingPath
	if prov.pathRequired || !opts.NoPath {
		own := g.tree.leaf(g.priv.leaf)
		template := &LeafNode{
			Credential:   own.Credential,
			Capabilities: own.Capabilities,
			Extensions:   own.Extensions,
		}
		pending, err = tree.generatePath(priv, template, g.sigPriv, g.ctx.GroupID, rnd)
		if err != nil {
			return nil, fmt.Errorf("making commit: %w", err)
		}
		newCtx.TreeHash = tree.treeHash()
		commit.Path, commitSecret, err = pending.encrypt(tree, encode(&newCtx), prov.added, rnd)
		if err != nil {
			return nil, fmt.Errorf("making commit: %w", err)
		}
	}
	newCtx.TreeHash = tree.treeHash()

	ac := &AuthenticatedContent{
		WireFormat: WirePublicMessage,
		Content: FramedContent{
			GroupID:     g.ctx.GroupID,
			Epoch:       g.ctx.Epoch,
			Sender:      self,
			ContentType: ContentCommit,
			Commit:      commit,
		},
	}
	if err := signFramedContent(s, g.sigPriv, ac, &g.ctx); err != nil {
		return nil, fmt.Errorf("signing commit: %w", err)
	}
	joiner, pskSecret, secrets, err := g.advanceSchedule(&newCtx, ac, prov, g.secrets.init, commitSecret)
	if err != nil {
		return nil, fmt.Errorf("making commit: %w", err)
	}
	ac.Auth.ConfirmationTag = s.confirmationTag(secrets.confirmation, newCtx.ConfirmedTranscriptHash)
	pub, err := protectPublic(s, ac, g.secrets.membership, &g.ctx)
	if err != nil {
		return nil, fmt.Errorf("framing commit: %w", err)
	}

	next := g.successor(tree, priv, newCtx, secrets, ac.Auth.ConfirmationTag)
	next.reinit = prov.reinit
	pc := &PendingCommit{
		Commit:  &MLSMessage{Version: ProtocolMLS10, WireFormat: WirePublicMessage, Public: pub},
		Added:   prov.added,
		Removed: prov.removed,
		epoch:   g.ctx.Epoch,
		next:    next,
	}
	if len(prov.added) > 0 {
		w, err := next.makeWelcome(prov, pending, joiner, pskSecret, !opts.WelcomeWithoutTree)
		if err != nil {
			return nil, err
		}
		pc.Welcome = &MLSMessage{Version: ProtocolMLS10, WireFormat: WireWelcome, Welcome: w}
	}
	return pc, nil
}

// ApplyCommit moves the group to the epoch of a commit it made, once the
// delivery service has accepted it.
func (g *Group) ApplyCommit(p *PendingCommit) error {
	if p == nil || p.next == nil || p.epoch != g.ctx.Epoch || !bytes.Equal(p.next.ctx.GroupID, g.ctx.GroupID) {
		return fmt.Errorf("applying commit: %w", ErrWrongEpoch)
	}
	*g = *p.next
	p.next = nil
	return nil
}

// successor builds the group state of the next epoch.
func (g *Group) successor(tree *ratchetTree, priv *treePrivate, ctx GroupContext, secrets *epochSecrets, tag []byte) *Group {
	s := g.suite
	next := &Group{
		cfg:        g.cfg,
		suite:      s,
		ctx:        ctx,
		tree:       tree,
		priv:       priv,
		sigPriv:    g.sigPriv,
		secrets:    secrets,
		secretTree: newSecretTree(s, secrets.encryption, tree.numLeaves()),
		interim:    s.interimTranscriptHash(ctx.ConfirmedTranscriptHash, tag),
		resumption: maps.Clone(g.resumption),
		active:     true,
	}
	// An external joiner's view of the epoch before its commit has no
	// secret tree: there is nothing of it to keep.
	if keep := g.cfg.pastEpochs(); keep > 0 && g.secretTree != nil {
		next.past = append(next.past, g.past...)
		next.past = append(next.past, pastEpoch{ctx: g.ctx, tree: g.tree, secretTree: g.secretTree, senderData: g.secrets.senderData})
		if len(next.past) > keep {
			next.past = next.past[len(next.past)-keep:]
		}
	}
	next.rememberResumption(ctx.Epoch, secrets.resumption)
	tree.prunePrivate(priv)
	return next
}

// makeWelcome builds the Welcome for the members a commit adds; g is the
// state of the new epoch.
func (g *Group) makeWelcome(prov *provisional, pending *pendingPath, joiner, pskSecret []byte, withTree bool) (*Welcome, error) {
	s := g.suite
	gi, err := g.makeGroupInfo(&g.ctx, g.tree, g.secrets, withTree, false)
	if err != nil {
		return nil, err
	}
	encGI, err := s.encryptGroupInfo(s.welcomeSecret(joiner, pskSecret), gi)
	if err != nil {
		return nil, fmt.Errorf("encrypting group info: %w", err)
	}
	w := &Welcome{CipherSuite: s.ID, EncryptedGroupInfo: encGI}
	for i, leaf := range prov.added {
		gs := GroupSecrets{JoinerSecret: joiner, PSKs: prov.psks}
		if pending != nil {
			gs.PathSecret = pending.pathSecretFor(g.tree, leaf)
		}
		kp := prov.addedKPs[i]
		ct, err := s.EncryptWithLabel(kp.InitKey, "Welcome", encGI, gs.Encode())
		if err != nil {
			return nil, fmt.Errorf("encrypting group secrets: %w", err)
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{NewMember: s.keyPackageRef(kp), EncryptedGroupSecrets: ct})
	}
	return w, nil
}

// CommitInfo describes a commit another member made, after it was applied.
type CommitInfo struct {
	Committer Sender
	Added     []LeafIndex
	Removed   []LeafIndex
	// RemovedSelf is set when this member was removed; the group is then
	// inactive.
	RemovedSelf bool
	// ReInit is set when the commit ended the group with a ReInit.
	ReInit *ReInitProposal
	// Extensions is set when the group context extensions changed.
	ExtensionsChanged bool
}

// processCommit verifies and applies a commit from another member or an
// external joiner (RFC 9420 section 12.4.2). On any error g is unchanged.
func (g *Group) processCommit(ac *AuthenticatedContent) (*CommitInfo, error) {
	s := g.suite
	c := ac.Content.Commit
	sender := ac.Content.Sender
	external := sender.Type == SenderNewMemberCommit
	switch {
	case sender.Type == SenderMember:
		if sender.LeafIndex == g.priv.leaf {
			return nil, fmt.Errorf("%w: own commit; apply the pending commit instead", ErrInvalidCommit)
		}
	case external:
		if c.Path == nil {
			return nil, fmt.Errorf("%w: external commit without a path", ErrInvalidCommit)
		}
	default:
		return nil, fmt.Errorf("%w: commit from sender type %d", ErrInvalidCommit, sender.Type)
	}

	items, err := g.resolveProposals(c, sender)
	if err != nil {
		return nil, err
	}
	prov, err := g.applyProposals(items, sender)
	if err != nil {
		return nil, err
	}
	if prov.pathRequired && c.Path == nil {
		return nil, fmt.Errorf("%w: path required but absent", ErrInvalidCommit)
	}
	tree := prov.tree
	committer := sender.LeafIndex
	if external {
		// The joiner takes the leftmost free leaf, as an Add would.
		// The tree holds the path's own leaf (not a copy) so that its
		// validation below does not see it as a second leaf with its keys.
		committer = tree.addLeaf(&c.Path.LeafNode)
		for _, r := range prov.removed {
			old := g.tree.leaf(r)
			if !bytes.Equal(encode(&old.Credential), encode(&c.Path.LeafNode.Credential)) {
				return nil, fmt.Errorf("%w: external commit removes another client", ErrInvalidCommit)
			}
		}
	}

	priv := g.priv.clone()
	newCtx := g.provisionalContext(prov.exts)
	var commitSecret []byte
	if c.Path != nil {
		required, err := requiredCapabilities(prov.exts)
		if err != nil {
			return nil, err
		}
		if err := tree.validateLeaf(&c.Path.LeafNode, LeafSourceCommit, g.ctx.GroupID, committer, g.cfg.now(), required, g.cfg.ValidateCredential); err != nil {
			return nil, fmt.Errorf("%w: committer leaf: %w", ErrInvalidCommit, err)
		}
		if err := leafSupportsGroupExtensions(&c.Path.LeafNode, prov.exts); err != nil {
			return nil, fmt.Errorf("%w: committer leaf: %w", ErrInvalidCommit, err)
		}
		if err := tree.mergePath(committer, c.Path, g.ctx.GroupID); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		if !prov.removedSelf {
			newCtx.TreeHash = tree.treeHash()
			commitSecret, err = tree.decryptPath(priv, committer, c.Path, encode(&newCtx), prov.added)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
		}
	}
	info := &CommitInfo{
		Committer:         sender,
		Added:             prov.added,
		Removed:           prov.removed,
		ReInit:            prov.reinit,
		ExtensionsChanged: !bytes.Equal(encodeExtensions(prov.exts), encodeExtensions(g.ctx.Extensions)),
	}
	if prov.removedSelf {
		// A removed member cannot follow the group into the new epoch.
		info.RemovedSelf = true
		g.active = false
		g.proposals = nil
		return info, nil
	}
	newCtx.TreeHash = tree.treeHash()

	initSecret := g.secrets.init
	if external {
		extPriv, _, err := s.externalKeyPair(g.secrets.external)
		if err != nil {
			return nil, err
		}
		initSecret, err = s.hpkeImport(extPriv, prov.externalInit.KEMOutput, nil, "MLS 1.0 external init secret", s.Nh())
		if err != nil {
			return nil, fmt.Errorf("%w: external init: %w", ErrInvalidCommit, err)
		}
	}
	_, _, secrets, err := g.advanceSchedule(&newCtx, ac, prov, initSecret, commitSecret)
	if err != nil {
		return nil, err
	}
	if err := s.verifyConfirmationTag(secrets.confirmation, newCtx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	next := g.successor(tree, priv, newCtx, secrets, ac.Auth.ConfirmationTag)
	next.reinit = prov.reinit
	*g = *next
	return info, nil
}

func encodeExtensions(exts []Extension) []byte {
	var w writer
	writeExtensions(&w, exts)
	return w.b
}

// provisionalContext is the group context of the next epoch before its
// tree hash and confirmed transcript hash are known.
func (g *Group) provisionalContext(exts []Extension) GroupContext {
	return GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             g.suite.ID,
		GroupID:                 g.ctx.GroupID,
		Epoch:                   g.ctx.Epoch + 1,
		ConfirmedTranscriptHash: g.ctx.ConfirmedTranscriptHash,
		Extensions:              exts,
	}
}

// advanceSchedule completes the next epoch's context with the confirmed
// transcript hash of the commit ac and runs the key schedule (RFC 9420
// section 8) from initSecret, commitSecret and the commit's PSKs.
func (g *Group) advanceSchedule(newCtx *GroupContext, ac *AuthenticatedContent, prov *provisional, initSecret, commitSecret []byte) (joiner, pskSecret []byte, secrets *epochSecrets, err error) {
	s := g.suite
	newCtx.ConfirmedTranscriptHash = s.confirmedTranscriptHash(g.interim, ac)
	psks, err := g.resolvePSKs(prov.psks)
	if err != nil {
		return nil, nil, nil, err
	}
	pskSecret = s.pskSecret(psks)
	joiner = s.joinerSecret(initSecret, commitSecret, newCtx)
	return joiner, pskSecret, s.deriveEpoch(joiner, pskSecret, newCtx), nil
}
