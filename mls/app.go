package mls

import (
	"bytes"
	"fmt"
)

// Encrypt protects an application message as a PrivateMessage. aad is
// authenticated but not encrypted.
func (g *Group) Encrypt(plaintext, aad []byte) (*MLSMessage, error) {
	m, _, err := g.EncryptWithGeneration(plaintext, aad)
	return m, err
}

// EncryptWithGeneration is Encrypt that also returns the generation of the
// sender's application ratchet the message used; with the group ID, epoch
// and sender leaf it names the message uniquely (anom's escrow records are
// derived from it).
func (g *Group) EncryptWithGeneration(plaintext, aad []byte) (*MLSMessage, uint32, error) {
	if !g.active || g.reinit != nil {
		return nil, 0, ErrInactive
	}
	ac := &AuthenticatedContent{
		WireFormat: WirePrivateMessage,
		Content: FramedContent{
			GroupID:           g.ctx.GroupID,
			Epoch:             g.ctx.Epoch,
			Sender:            Sender{Type: SenderMember, LeafIndex: g.priv.leaf},
			AuthenticatedData: aad,
			ContentType:       ContentApplication,
			Application:       plaintext,
		},
	}
	if err := signFramedContent(g.suite, g.sigPriv, ac, &g.ctx); err != nil {
		return nil, 0, fmt.Errorf("signing message: %w", err)
	}
	pm, gen, err := protectPrivate(g.suite, ac, g.secretTree, g.secrets.senderData, g.padding(len(plaintext)), g.cfg.rand())
	if err != nil {
		return nil, 0, fmt.Errorf("encrypting message: %w", err)
	}
	return &MLSMessage{Version: ProtocolMLS10, WireFormat: WirePrivateMessage, Private: pm}, gen, nil
}

// padding returns how many zero bytes to add to content of length n.
func (g *Group) padding(n int) int {
	b := g.cfg.PaddingBlock
	if b <= 0 {
		return 0
	}
	return (b - n%b) % b
}

// Received is what Handle made of a message.
type Received struct {
	Type   ContentType
	Sender Sender
	// SenderCredential is the credential of a member sender.
	SenderCredential *Credential
	// Application is the plaintext of an application message.
	Application []byte
	// AuthenticatedData is the message's unencrypted authenticated data.
	AuthenticatedData []byte
	// Generation is the ratchet generation of a private message.
	Generation uint32
	// Epoch the message was sent in.
	Epoch uint64
	// Proposal is a proposal now cached until a commit references it.
	Proposal *Proposal
	// Commit describes an applied commit.
	Commit *CommitInfo
}

// Handle processes a PublicMessage or PrivateMessage for this group:
// application messages are decrypted, proposals cached, commits applied.
// On error the group state is unchanged.
func (g *Group) Handle(msg *MLSMessage) (*Received, error) {
	if !g.active {
		return nil, ErrInactive
	}
	var ac *AuthenticatedContent
	var gen uint32
	switch msg.WireFormat {
	case WirePublicMessage:
		pm := msg.Public
		if err := g.checkFrame(pm.Content.GroupID, pm.Content.Epoch); err != nil {
			return nil, err
		}
		if pm.Content.ContentType == ContentApplication {
			return nil, fmt.Errorf("%w: application data in a public message", ErrInvalidMessage)
		}
		var err error
		if ac, err = unprotectPublic(g.suite, pm, g.secrets.membership, &g.ctx); err != nil {
			return nil, err
		}
	case WirePrivateMessage:
		pm := msg.Private
		if bytes.Equal(pm.GroupID, g.ctx.GroupID) && pm.Epoch < g.ctx.Epoch {
			return g.handlePast(pm)
		}
		if err := g.checkFrame(pm.GroupID, pm.Epoch); err != nil {
			return nil, err
		}
		var err error
		if ac, gen, err = unprotectPrivate(g.suite, pm, g.secretTree, g.secrets.senderData); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: wire format %d is not group content", ErrInvalidMessage, msg.WireFormat)
	}
	sigKey, cred, err := g.senderKey(ac)
	if err != nil {
		return nil, err
	}
	if err := verifyFramedContent(g.suite, sigKey, ac, &g.ctx); err != nil {
		return nil, fmt.Errorf("verifying message: %w", err)
	}
	rec := &Received{
		Type:              ac.Content.ContentType,
		Sender:            ac.Content.Sender,
		SenderCredential:  cred,
		AuthenticatedData: ac.Content.AuthenticatedData,
		Generation:        gen,
		Epoch:             ac.Content.Epoch,
	}
	switch ac.Content.ContentType {
	case ContentApplication:
		if g.reinit != nil {
			return nil, fmt.Errorf("%w: application message after reinit", ErrInvalidMessage)
		}
		rec.Application = ac.Content.Application
	case ContentProposal:
		if err := g.verifyProposalSender(ac); err != nil {
			return nil, err
		}
		ref := g.suite.proposalRef(ac)
		g.proposals = append(g.proposals, cachedProposal{ref: ref, proposal: ac.Content.Proposal, sender: ac.Content.Sender})
		rec.Proposal = ac.Content.Proposal
	case ContentCommit:
		if rec.Commit, err = g.processCommit(ac); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// checkFrame checks a message's group ID and epoch.
func (g *Group) checkFrame(groupID []byte, epoch uint64) error {
	if !bytes.Equal(groupID, g.ctx.GroupID) {
		return ErrWrongGroup
	}
	if epoch != g.ctx.Epoch {
		return fmt.Errorf("%w: message epoch %d, group epoch %d", ErrWrongEpoch, epoch, g.ctx.Epoch)
	}
	return nil
}

// senderKey finds the signature key that must have signed content.
func (g *Group) senderKey(ac *AuthenticatedContent) ([]byte, *Credential, error) {
	snd := ac.Content.Sender
	switch snd.Type {
	case SenderMember:
		l := g.tree.leaf(snd.LeafIndex)
		if l == nil {
			return nil, nil, fmt.Errorf("%w: leaf %d", ErrUnknownSender, snd.LeafIndex)
		}
		return l.SignatureKey, &l.Credential, nil
	case SenderExternal:
		ext := g.externalSenders()
		if int(snd.SenderIndex) >= len(ext) {
			return nil, nil, fmt.Errorf("%w: external sender %d", ErrUnknownSender, snd.SenderIndex)
		}
		if ac.Content.ContentType != ContentProposal {
			return nil, nil, fmt.Errorf("%w: external sender sent content type %d", ErrInvalidMessage, ac.Content.ContentType)
		}
		return ext[snd.SenderIndex].SignatureKey, &ext[snd.SenderIndex].Credential, nil
	case SenderNewMemberProposal:
		p := ac.Content.Proposal
		if ac.Content.ContentType != ContentProposal || p.Type != ProposalAdd {
			return nil, nil, fmt.Errorf("%w: new member proposal that is not an add", ErrInvalidMessage)
		}
		return p.Add.KeyPackage.LeafNode.SignatureKey, &p.Add.KeyPackage.LeafNode.Credential, nil
	case SenderNewMemberCommit:
		c := ac.Content.Commit
		if ac.Content.ContentType != ContentCommit || c.Path == nil {
			return nil, nil, fmt.Errorf("%w: new member commit without a path", ErrInvalidMessage)
		}
		return c.Path.LeafNode.SignatureKey, &c.Path.LeafNode.Credential, nil
	}
	return nil, nil, fmt.Errorf("%w: sender type %d", ErrUnknownSender, snd.Type)
}

// ExternalProposal makes a proposal signed by an external sender listed in
// a group's external_senders extension (anom's server uses it to propose
// removing a revoked device). It is sent as a PublicMessage.
func ExternalProposal(s *CipherSuite, sigPriv SignaturePrivateKey, senderIndex uint32, groupID []byte, epoch uint64, p *Proposal) (*MLSMessage, error) {
	ac := &AuthenticatedContent{
		WireFormat: WirePublicMessage,
		Content: FramedContent{
			GroupID:     groupID,
			Epoch:       epoch,
			Sender:      Sender{Type: SenderExternal, SenderIndex: senderIndex},
			ContentType: ContentProposal,
			Proposal:    p,
		},
	}
	if err := signFramedContent(s, sigPriv, ac, nil); err != nil {
		return nil, fmt.Errorf("signing external proposal: %w", err)
	}
	pub, err := protectPublic(s, ac, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("framing external proposal: %w", err)
	}
	return &MLSMessage{Version: ProtocolMLS10, WireFormat: WirePublicMessage, Public: pub}, nil
}

// handlePast decrypts an application message sent in one of the retained
// past epochs (it was in flight when a commit moved the group on).
func (g *Group) handlePast(pm *PrivateMessage) (*Received, error) {
	var ep *pastEpoch
	for i := range g.past {
		if g.past[i].ctx.Epoch == pm.Epoch {
			ep = &g.past[i]
		}
	}
	if ep == nil {
		return nil, fmt.Errorf("%w: message epoch %d is older than the retained epochs (group epoch %d)", ErrWrongEpoch, pm.Epoch, g.ctx.Epoch)
	}
	if pm.ContentType != ContentApplication {
		return nil, fmt.Errorf("%w: handshake message of past epoch %d", ErrWrongEpoch, pm.Epoch)
	}
	ac, gen, err := unprotectPrivate(g.suite, pm, ep.secretTree, ep.senderData)
	if err != nil {
		return nil, err
	}
	l := ep.tree.leaf(ac.Content.Sender.LeafIndex)
	if l == nil {
		return nil, fmt.Errorf("%w: leaf %d in epoch %d", ErrUnknownSender, ac.Content.Sender.LeafIndex, pm.Epoch)
	}
	if err := verifyFramedContent(g.suite, l.SignatureKey, ac, &ep.ctx); err != nil {
		return nil, fmt.Errorf("verifying message: %w", err)
	}
	return &Received{
		Type:              ContentApplication,
		Sender:            ac.Content.Sender,
		SenderCredential:  &l.Credential,
		Application:       ac.Content.Application,
		AuthenticatedData: ac.Content.AuthenticatedData,
		Generation:        gen,
		Epoch:             pm.Epoch,
	}, nil
}
