package mls

import (
	"bytes"
	"fmt"
	"math"
)

// proposalItem is a proposal with the member (or external party) that
// sent it; for inline proposals the sender is the committer.
type proposalItem struct {
	proposal *Proposal
	sender   Sender
	ref      []byte // nil for inline proposals
}

// provisional is the result of applying a commit's proposals to a copy of
// the group state. Nothing in the Group changes until the whole commit
// has been checked.
type provisional struct {
	tree         *ratchetTree
	exts         []Extension
	added        []LeafIndex
	addedKPs     []*KeyPackage
	psks         []PreSharedKeyID
	reinit       *ReInitProposal
	externalInit *ExternalInitProposal
	removed      []LeafIndex
	removedSelf  bool
	pathRequired bool
}

// noLeaf is passed to validateLeaf for a leaf that has no index yet.
const noLeaf = LeafIndex(math.MaxUint32)

// resolveProposals turns a commit's ProposalOrRef list into proposals,
// looking references up in the cache of the current epoch.
func (g *Group) resolveProposals(c *Commit, committer Sender) ([]proposalItem, error) {
	items := make([]proposalItem, 0, len(c.Proposals))
	for _, por := range c.Proposals {
		if por.Proposal != nil {
			items = append(items, proposalItem{proposal: por.Proposal, sender: committer})
			continue
		}
		if committer.Type == SenderNewMemberCommit {
			return nil, fmt.Errorf("%w: external commit references a proposal", ErrInvalidCommit)
		}
		found := false
		for _, cp := range g.proposals {
			if bytes.Equal(cp.ref, por.Reference) {
				items = append(items, proposalItem{proposal: cp.proposal, sender: cp.sender, ref: cp.ref})
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %x", ErrUnknownProposal, por.Reference)
		}
	}
	return items, nil
}

// applyProposals validates a proposal list as RFC 9420 sections 12.1 and
// 12.2 require and applies it, in the order of section 12.3, to a copy of
// the tree.
func (g *Group) applyProposals(items []proposalItem, committer Sender) (*provisional, error) {
	s := g.suite
	external := committer.Type == SenderNewMemberCommit
	prov := &provisional{exts: g.ctx.Extensions}
	var gce *Proposal
	var updates, removes, adds []proposalItem
	targeted := map[LeafIndex]bool{}
	fail := func(format string, args ...any) (*provisional, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidProposal}, args...)...)
	}

	for _, it := range items {
		p := it.proposal
		switch p.Type {
		case ProposalAdd:
			if external {
				return fail("add in an external commit")
			}
			if err := verifyKeyPackage(s, &p.Add.KeyPackage); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
			}
			adds = append(adds, it)
		case ProposalUpdate:
			if external {
				return fail("update in an external commit")
			}
			if it.sender.Type != SenderMember {
				return fail("update from a non-member")
			}
			if committer.Type == SenderMember && it.sender.LeafIndex == committer.LeafIndex {
				return fail("committer includes its own update")
			}
			if g.tree.leaf(it.sender.LeafIndex) == nil {
				return fail("update from blank leaf %d", it.sender.LeafIndex)
			}
			if targeted[it.sender.LeafIndex] {
				return fail("several updates or removes for leaf %d", it.sender.LeafIndex)
			}
			targeted[it.sender.LeafIndex] = true
			updates = append(updates, it)
		case ProposalRemove:
			r := p.Remove.Removed
			if g.tree.leaf(r) == nil {
				return fail("remove of blank or absent leaf %d", r)
			}
			if committer.Type == SenderMember && r == committer.LeafIndex {
				return fail("committer removes itself")
			}
			if targeted[r] {
				return fail("several updates or removes for leaf %d", r)
			}
			targeted[r] = true
			removes = append(removes, it)
		case ProposalPSK:
			id := p.PSK
			if id.Type == PSKResumption && id.Usage != ResumptionApplication {
				return fail("resumption psk with usage %d in a commit", id.Usage)
			}
			if len(id.Nonce) != s.Nh() {
				return fail("psk nonce of %d bytes", len(id.Nonce))
			}
			for _, prev := range prov.psks {
				if bytes.Equal(encode(&prev), encode(id)) {
					return fail("duplicate psk")
				}
			}
			prov.psks = append(prov.psks, *id)
		case ProposalGroupContextExtensions:
			if external {
				return fail("group context extensions in an external commit")
			}
			if gce != nil {
				return fail("several group context extensions proposals")
			}
			gce = p
		case ProposalReInit:
			if len(items) != 1 {
				return fail("reinit with other proposals")
			}
			if p.ReInit.Version < ProtocolMLS10 {
				return fail("reinit to version %d", p.ReInit.Version)
			}
			prov.reinit = p.ReInit
		case ProposalExternalInit:
			if !external {
				return fail("external init in a member commit")
			}
			if prov.externalInit != nil {
				return fail("several external init proposals")
			}
			prov.externalInit = p.ExternalInit
		default:
			return fail("unsupported proposal type %d", p.Type)
		}
		switch p.Type {
		case ProposalUpdate, ProposalRemove, ProposalExternalInit, ProposalGroupContextExtensions:
			prov.pathRequired = true
		}
	}
	if len(items) == 0 {
		prov.pathRequired = true
	}
	if external && prov.externalInit == nil {
		return fail("external commit without external init")
	}

	tree := g.tree.clone()
	prov.tree = tree
	if gce != nil {
		prov.exts = gce.GroupContextExtensions
	}
	required, err := requiredCapabilities(prov.exts)
	if err != nil {
		return nil, err
	}
	now := g.cfg.now()
	for _, it := range updates {
		l := &it.proposal.Update.LeafNode
		if err := tree.validateLeaf(l, LeafSourceUpdate, g.ctx.GroupID, it.sender.LeafIndex, now, required, g.cfg.ValidateCredential); err != nil {
			return nil, fmt.Errorf("%w: update from leaf %d: %w", ErrInvalidProposal, it.sender.LeafIndex, err)
		}
		if err := leafSupportsGroupExtensions(l, prov.exts); err != nil {
			return nil, fmt.Errorf("%w: update from leaf %d: %w", ErrInvalidProposal, it.sender.LeafIndex, err)
		}
		leaf := *l
		tree.updateLeaf(it.sender.LeafIndex, &leaf)
	}
	for _, it := range removes {
		r := it.proposal.Remove.Removed
		tree.removeLeaf(r)
		prov.removed = append(prov.removed, r)
		if r == g.priv.leaf {
			prov.removedSelf = true
		}
	}
	for _, it := range adds {
		kp := &it.proposal.Add.KeyPackage
		if err := tree.validateLeaf(&kp.LeafNode, LeafSourceKeyPackage, g.ctx.GroupID, noLeaf, now, required, g.cfg.ValidateCredential); err != nil {
			return nil, fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
		if err := leafSupportsGroupExtensions(&kp.LeafNode, prov.exts); err != nil {
			return nil, fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
		leaf := kp.LeafNode
		prov.added = append(prov.added, tree.addLeaf(&leaf))
		prov.addedKPs = append(prov.addedKPs, kp)
	}
	if gce != nil {
		if err := g.checkGroupExtensions(tree, prov.exts); err != nil {
			return nil, err
		}
	}
	return prov, nil
}

// verifyProposalSender checks that a standalone proposal may come from its
// sender (RFC 9420 section 12.1 and 6).
func (g *Group) verifyProposalSender(ac *AuthenticatedContent) error {
	p := ac.Content.Proposal
	switch ac.Content.Sender.Type {
	case SenderMember:
		if p.Type == ProposalExternalInit {
			return fmt.Errorf("%w: external init sent as a proposal", ErrInvalidProposal)
		}
	case SenderExternal:
		switch p.Type {
		case ProposalAdd, ProposalRemove, ProposalPSK, ProposalReInit, ProposalGroupContextExtensions:
		default:
			return fmt.Errorf("%w: type %d from an external sender", ErrInvalidProposal, p.Type)
		}
	case SenderNewMemberProposal:
		if p.Type != ProposalAdd {
			return fmt.Errorf("%w: new member proposal of type %d", ErrInvalidProposal, p.Type)
		}
	default:
		return fmt.Errorf("%w: proposal from sender type %d", ErrInvalidProposal, ac.Content.Sender.Type)
	}
	if p.Type == ProposalUpdate && ac.Content.Sender.Type == SenderMember {
		l := &p.Update.LeafNode
		if l.Source != LeafSourceUpdate {
			return fmt.Errorf("%w: update leaf with source %d", ErrInvalidProposal, l.Source)
		}
	}
	return nil
}
