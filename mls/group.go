package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors of the group state machine. Every failure to process a message
// wraps one of these (or a lower-level sentinel) and leaves the group state
// unchanged: a commit applies whole or not at all.
var (
	ErrWrongGroup        = errors.New("mls: message for another group")
	ErrWrongEpoch        = errors.New("mls: message for another epoch")
	ErrInvalidProposal   = errors.New("mls: invalid proposal")
	ErrInvalidCommit     = errors.New("mls: invalid commit")
	ErrUnknownSender     = errors.New("mls: unknown sender")
	ErrUnknownProposal   = errors.New("mls: commit references an unknown proposal")
	ErrMissingPSK        = errors.New("mls: pre-shared key not available")
	ErrInactive          = errors.New("mls: this member is no longer in the group")
	ErrConfirmationTag   = errors.New("mls: confirmation tag mismatch")
	ErrInvalidKeyPackage = errors.New("mls: invalid key package")
)

// Config holds what a group member needs beyond its keys. The zero value
// is usable: crypto/rand, the system clock, no credential check beyond the
// leaf signatures, no external PSKs and no padding.
type Config struct {
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
	// Now returns the current time for lifetime checks; nil means time.Now.
	Now func() time.Time
	// ValidateCredential checks a member's credential against its
	// signature key (anom checks device certificates here); nil accepts
	// any credential of a type the group supports.
	ValidateCredential CredentialValidator
	// ExternalPSK returns the secret of an external pre-shared key; nil
	// means none are known.
	ExternalPSK func(id []byte) ([]byte, bool)
	// PaddingBlock pads private message content to a multiple of this
	// many bytes; 0 means no padding.
	PaddingBlock int
	// ResumptionPSKEpochs is how many past epochs' resumption PSKs are
	// kept; 0 means 8.
	ResumptionPSKEpochs int
	// PastEpochs is how many past epochs' application keys are kept so
	// that messages in flight during a commit can still be read; 0 means
	// 2, a negative value keeps none. Keeping them trades a little
	// forward secrecy for not losing late messages.
	PastEpochs int
}

func (c *Config) pastEpochs() int {
	switch {
	case c.PastEpochs < 0:
		return 0
	case c.PastEpochs == 0:
		return 2
	}
	return c.PastEpochs
}

// pastEpoch is what is kept of an earlier epoch to read late application
// messages: its context, tree, secret tree and sender-data secret.
type pastEpoch struct {
	ctx        GroupContext
	tree       *ratchetTree
	secretTree *secretTree
	senderData []byte
}

func (c *Config) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Config) resumptionEpochs() int {
	if c.ResumptionPSKEpochs > 0 {
		return c.ResumptionPSKEpochs
	}
	return 8
}

// cachedProposal is a proposal received in the current epoch, kept until a
// commit references it.
type cachedProposal struct {
	ref      []byte
	proposal *Proposal
	sender   Sender
}

// Group is one member's view of an MLS group in one epoch. It is not safe
// for concurrent use.
type Group struct {
	cfg     Config
	suite   *CipherSuite
	ctx     GroupContext
	tree    *ratchetTree
	priv    *treePrivate
	sigPriv SignaturePrivateKey

	secrets    *epochSecrets
	secretTree *secretTree
	interim    []byte

	past        []pastEpoch // oldest first
	proposals   []cachedProposal
	resumption  map[uint64][]byte // epoch -> resumption_psk
	reinit      *ReInitProposal   // set once a ReInit was committed
	active      bool
	pendingSelf *LeafNode // own Update proposal's leaf, if any
}

// GroupOptions are the settings of a new group.
type GroupOptions struct {
	// Extensions of the group context (required_capabilities,
	// external_senders, ...); nil means none.
	Extensions []Extension
}

// CreateGroup starts a one-member group (RFC 9420 section 11) with the
// member described by a key package bundle of its own.
func CreateGroup(cfg Config, groupID []byte, self *KeyPackageBundle, opts GroupOptions) (*Group, error) {
	s, err := Suite(self.KeyPackage.CipherSuite)
	if err != nil {
		return nil, err
	}
	leaf := self.KeyPackage.LeafNode
	tree, err := newRatchetTree(s, []*Node{{Leaf: &leaf}})
	if err != nil {
		return nil, fmt.Errorf("creating group tree: %w", err)
	}
	g := &Group{
		cfg:        cfg,
		suite:      s,
		tree:       tree,
		priv:       &treePrivate{leaf: 0, keys: map[NodeIndex][]byte{0: self.EncryptionPriv}},
		sigPriv:    self.SignaturePriv.Expanded(),
		resumption: map[uint64][]byte{},
		active:     true,
	}
	g.ctx = GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             s.ID,
		GroupID:                 bytes.Clone(groupID),
		Epoch:                   0,
		TreeHash:                tree.treeHash(),
		ConfirmedTranscriptHash: []byte{},
		Extensions:              opts.Extensions,
	}
	if err := g.checkGroupExtensions(tree, g.ctx.Extensions); err != nil {
		return nil, err
	}
	epochSecret := make([]byte, s.Nh())
	if _, err := io.ReadFull(cfg.rand(), epochSecret); err != nil {
		return nil, fmt.Errorf("creating group: reading randomness: %w", err)
	}
	g.secrets = s.epochFromSecret(epochSecret)
	g.secretTree = newSecretTree(s, g.secrets.encryption, tree.numLeaves())
	tag := s.confirmationTag(g.secrets.confirmation, g.ctx.ConfirmedTranscriptHash)
	g.interim = s.interimTranscriptHash(g.ctx.ConfirmedTranscriptHash, tag)
	g.resumption[0] = g.secrets.resumption
	return g, nil
}

// GroupID returns the group's ID.
func (g *Group) GroupID() []byte { return bytes.Clone(g.ctx.GroupID) }

// Epoch returns the current epoch.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// CipherSuite returns the group's suite.
func (g *Group) CipherSuite() *CipherSuite { return g.suite }

// LeafIndex returns this member's leaf.
func (g *Group) LeafIndex() LeafIndex { return g.priv.leaf }

// Active reports whether this member is still in the group.
func (g *Group) Active() bool { return g.active }

// ReInit returns the committed ReInit proposal, if the group was ended by one.
func (g *Group) ReInit() *ReInitProposal { return g.reinit }

// EpochAuthenticator returns the epoch authenticator, which members can
// compare out of band to detect a split view.
func (g *Group) EpochAuthenticator() []byte { return bytes.Clone(g.secrets.epochAuthenticator) }

// Context returns a copy of the group context.
func (g *Group) Context() GroupContext {
	c := g.ctx
	c.GroupID = bytes.Clone(c.GroupID)
	return c
}

// Export is the MLS exporter (RFC 9420 section 8.5).
func (g *Group) Export(label string, context []byte, length int) []byte {
	return g.suite.exportSecret(g.secrets.exporter, label, context, length)
}

// Member describes one leaf of the group.
type Member struct {
	Leaf         LeafIndex
	Credential   Credential
	SignatureKey []byte
	Self         bool
}

// Members lists the non-blank leaves of the tree.
func (g *Group) Members() []Member {
	var out []Member
	for i, l := range g.tree.leaves() {
		out = append(out, Member{Leaf: i, Credential: l.Credential, SignatureKey: bytes.Clone(l.SignatureKey), Self: i == g.priv.leaf})
	}
	return out
}

// Tree returns the ratchet tree as carried in the ratchet_tree extension.
func (g *Group) Tree() []*Node { return g.tree.encode() }

// GroupInfo returns a signed GroupInfo for the current epoch, with the
// ratchet tree and external public key extensions when asked.
func (g *Group) GroupInfo(withTree, withExternalPub bool) (*GroupInfo, error) {
	return g.makeGroupInfo(&g.ctx, g.tree, g.secrets, withTree, withExternalPub)
}

func (g *Group) makeGroupInfo(ctx *GroupContext, tree *ratchetTree, secrets *epochSecrets, withTree, withExternalPub bool) (*GroupInfo, error) {
	gi := &GroupInfo{
		GroupContext:    *ctx,
		ConfirmationTag: g.suite.confirmationTag(secrets.confirmation, ctx.ConfirmedTranscriptHash),
		Signer:          g.priv.leaf,
	}
	if withTree {
		gi.Extensions = append(gi.Extensions, Extension{Type: ExtRatchetTree, Data: EncodeRatchetTree(tree.encode())})
	}
	if withExternalPub {
		_, pub, err := g.suite.externalKeyPair(secrets.external)
		if err != nil {
			return nil, err
		}
		var w writer
		w.opaque(pub)
		gi.Extensions = append(gi.Extensions, Extension{Type: ExtExternalPub, Data: w.b})
	}
	if err := g.suite.signGroupInfo(g.sigPriv, gi); err != nil {
		return nil, fmt.Errorf("signing group info: %w", err)
	}
	return gi, nil
}

// requiredCapabilities parses the group's required_capabilities, if any.
func requiredCapabilities(exts []Extension) (*RequiredCapabilities, error) {
	data, ok := findExtension(exts, ExtRequiredCapabilities)
	if !ok {
		return nil, nil
	}
	rc, err := DecodeRequiredCapabilities(data)
	if err != nil {
		return nil, fmt.Errorf("%w: required_capabilities: %v", ErrInvalidProposal, err)
	}
	return &rc, nil
}

// checkGroupExtensions checks that every member supports the group
// context extensions (and the required capabilities they name).
func (g *Group) checkGroupExtensions(tree *ratchetTree, exts []Extension) error {
	rc, err := requiredCapabilities(exts)
	if err != nil {
		return err
	}
	if data, ok := findExtension(exts, ExtExternalSenders); ok {
		if _, err := DecodeExternalSenders(data); err != nil {
			return fmt.Errorf("%w: external_senders: %v", ErrInvalidProposal, err)
		}
	}
	for i, l := range tree.leaves() {
		if err := leafSupportsGroupExtensions(l, exts); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidProposal, i, err)
		}
		if err := leafSupportsRequired(l, rc); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidProposal, i, err)
		}
	}
	return nil
}

// externalSenders returns the group's external senders.
func (g *Group) externalSenders() []ExternalSender {
	data, ok := findExtension(g.ctx.Extensions, ExtExternalSenders)
	if !ok {
		return nil
	}
	s, err := DecodeExternalSenders(data)
	if err != nil {
		return nil
	}
	return s
}

// rememberResumption keeps the resumption PSK of an epoch and forgets old ones.
func (g *Group) rememberResumption(epoch uint64, psk []byte) {
	g.resumption[epoch] = psk
	keep := uint64(g.cfg.resumptionEpochs())
	for e := range g.resumption {
		if e+keep <= epoch {
			delete(g.resumption, e)
		}
	}
}

// resolvePSKs looks up the secrets of the PSKs named by a commit or welcome.
func (g *Group) resolvePSKs(ids []PreSharedKeyID) ([]pskInput, error) {
	out := make([]pskInput, 0, len(ids))
	for _, id := range ids {
		var secret []byte
		switch id.Type {
		case PSKExternal:
			if g.cfg.ExternalPSK != nil {
				if v, ok := g.cfg.ExternalPSK(id.ExternalID); ok {
					secret = v
				}
			}
		case PSKResumption:
			if bytes.Equal(id.GroupID, g.ctx.GroupID) {
				secret = g.resumption[id.Epoch]
			}
		}
		if secret == nil {
			return nil, fmt.Errorf("%w: type %d id %x", ErrMissingPSK, id.Type, id.ExternalID)
		}
		out = append(out, pskInput{id: id, secret: secret})
	}
	return out, nil
}
