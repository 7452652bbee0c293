package mls

// This file declares the wire types of RFC 9420 shared by every part of the
// protocol, with their encoders and strict decoders. Framing types
// (PublicMessage, PrivateMessage, MLSMessage) are in message.go.

// ProtocolVersion identifies the MLS version; only mls10 exists.
type ProtocolVersion uint16

const ProtocolMLS10 ProtocolVersion = 1

// CipherSuiteID is the IANA cipher suite number.
type CipherSuiteID uint16

// ContentType of framed content.
type ContentType uint8

const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

// SenderType of framed content.
type SenderType uint8

const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// WireFormat of an MLSMessage.
type WireFormat uint16

const (
	WirePublicMessage  WireFormat = 1
	WirePrivateMessage WireFormat = 2
	WireWelcome        WireFormat = 3
	WireGroupInfo      WireFormat = 4
	WireKeyPackage     WireFormat = 5
)

// ProposalType numbers.
type ProposalType uint16

const (
	ProposalAdd                    ProposalType = 1
	ProposalUpdate                 ProposalType = 2
	ProposalRemove                 ProposalType = 3
	ProposalPSK                    ProposalType = 4
	ProposalReInit                 ProposalType = 5
	ProposalExternalInit           ProposalType = 6
	ProposalGroupContextExtensions ProposalType = 7
)

// CredentialType numbers.
type CredentialType uint16

const (
	CredentialBasic CredentialType = 1
	CredentialX509  CredentialType = 2
)

// ExtensionType numbers.
type ExtensionType uint16

const (
	ExtApplicationID        ExtensionType = 1
	ExtRatchetTree          ExtensionType = 2
	ExtRequiredCapabilities ExtensionType = 3
	ExtExternalPub          ExtensionType = 4
	ExtExternalSenders      ExtensionType = 5
)

// LeafNodeSource says why a leaf node was made.
type LeafNodeSource uint8

const (
	LeafSourceKeyPackage LeafNodeSource = 1
	LeafSourceUpdate     LeafNodeSource = 2
	LeafSourceCommit     LeafNodeSource = 3
)

// PSKType numbers.
type PSKType uint8

const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage numbers.
type ResumptionPSKUsage uint8

const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReInit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// NodeType in a serialized ratchet tree.
type NodeType uint8

const (
	NodeLeaf   NodeType = 1
	NodeParent NodeType = 2
)

// ProposalOrRefType numbers.
type ProposalOrRefType uint8

const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

func writeU16s[T ~uint16](w *writer, v []T) {
	writeVector(w, v, func(w *writer, x T) { w.u16(uint16(x)) })
}

func readU16s[T ~uint16](r *reader, field string) []T {
	return readVector(r, field, func(r *reader) T { return T(r.u16(field)) })
}

// Credential binds an identity to a signature key. Basic credentials carry
// an opaque identity; X.509 credentials a certificate chain. anom checks
// credentials through the CredentialValidator hook.
type Credential struct {
	Type         CredentialType
	Identity     []byte   // basic
	Certificates [][]byte // x509
}

func (c *Credential) marshal(w *writer) {
	w.u16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		w.opaque(c.Identity)
	case CredentialX509:
		writeVector(w, c.Certificates, func(w *writer, b []byte) { w.opaque(b) })
	default:
		panic("mls: cannot encode unknown credential type")
	}
}

func (c *Credential) unmarshal(r *reader) {
	c.Type = CredentialType(r.u16("credential.type"))
	switch c.Type {
	case CredentialBasic:
		c.Identity = r.opaque("credential.identity")
	case CredentialX509:
		c.Certificates = readVector(r, "credential.certificates", func(r *reader) []byte { return r.opaque("certificate") })
	default:
		if r.err == nil {
			r.failf("credential.type", "unknown credential type %d", c.Type)
		}
	}
}

// Capabilities advertised by a leaf.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuiteID
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func (c *Capabilities) marshal(w *writer) {
	writeU16s(w, c.Versions)
	writeU16s(w, c.CipherSuites)
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

func (c *Capabilities) unmarshal(r *reader) {
	c.Versions = readU16s[ProtocolVersion](r, "capabilities.versions")
	c.CipherSuites = readU16s[CipherSuiteID](r, "capabilities.cipher_suites")
	c.Extensions = readU16s[ExtensionType](r, "capabilities.extensions")
	c.Proposals = readU16s[ProposalType](r, "capabilities.proposals")
	c.Credentials = readU16s[CredentialType](r, "capabilities.credentials")
}

// Lifetime bounds a key package leaf, in seconds since the Unix epoch.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// Extension is a typed opaque extension.
type Extension struct {
	Type ExtensionType
	Data []byte
}

func writeExtensions(w *writer, exts []Extension) {
	writeVector(w, exts, func(w *writer, e Extension) {
		w.u16(uint16(e.Type))
		w.opaque(e.Data)
	})
}

// readExtensions decodes a vector of extensions and rejects duplicates.
func readExtensions(r *reader, field string) []Extension {
	exts := readVector(r, field, func(r *reader) Extension {
		return Extension{Type: ExtensionType(r.u16(field)), Data: r.opaque(field)}
	})
	for i := range exts {
		for j := i + 1; j < len(exts); j++ {
			if exts[i].Type == exts[j].Type && r.err == nil {
				r.failf(field, "duplicate extension %d", exts[i].Type)
			}
		}
	}
	return exts
}

// findExtension returns the data of the extension of type t.
func findExtension(exts []Extension, t ExtensionType) ([]byte, bool) {
	for _, e := range exts {
		if e.Type == t {
			return e.Data, true
		}
	}
	return nil, false
}

// LeafNode is a member's leaf in the ratchet tree.
type LeafNode struct {
	EncryptionKey []byte
	SignatureKey  []byte
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime // Source == LeafSourceKeyPackage
	ParentHash    []byte   // Source == LeafSourceCommit
	Extensions    []Extension
	Signature     []byte
}

// marshalContent writes the LeafNode fields covered by its signature
// (LeafNodeTBS without the group binding).
func (l *LeafNode) marshalContent(w *writer) {
	w.opaque(l.EncryptionKey)
	w.opaque(l.SignatureKey)
	l.Credential.marshal(w)
	l.Capabilities.marshal(w)
	w.u8(uint8(l.Source))
	switch l.Source {
	case LeafSourceKeyPackage:
		w.u64(l.Lifetime.NotBefore)
		w.u64(l.Lifetime.NotAfter)
	case LeafSourceCommit:
		w.opaque(l.ParentHash)
	}
	writeExtensions(w, l.Extensions)
}

// tbs returns the LeafNodeTBS: for update and commit sources it binds the
// leaf to the group and leaf index.
func (l *LeafNode) tbs(groupID []byte, leaf LeafIndex) []byte {
	var w writer
	l.marshalContent(&w)
	if l.Source == LeafSourceUpdate || l.Source == LeafSourceCommit {
		w.opaque(groupID)
		w.u32(uint32(leaf))
	}
	return w.b
}

func (l *LeafNode) marshal(w *writer) {
	l.marshalContent(w)
	w.opaque(l.Signature)
}

func (l *LeafNode) unmarshal(r *reader) {
	l.EncryptionKey = r.opaque("leaf_node.encryption_key")
	l.SignatureKey = r.opaque("leaf_node.signature_key")
	l.Credential.unmarshal(r)
	l.Capabilities.unmarshal(r)
	l.Source = LeafNodeSource(r.u8("leaf_node.source"))
	switch l.Source {
	case LeafSourceKeyPackage:
		l.Lifetime.NotBefore = r.u64("leaf_node.lifetime")
		l.Lifetime.NotAfter = r.u64("leaf_node.lifetime")
	case LeafSourceUpdate:
	case LeafSourceCommit:
		l.ParentHash = r.opaque("leaf_node.parent_hash")
	default:
		if r.err == nil {
			r.failf("leaf_node.source", "unknown leaf node source %d", l.Source)
		}
	}
	l.Extensions = readExtensions(r, "leaf_node.extensions")
	l.Signature = r.opaque("leaf_node.signature")
}

// KeyPackage advertises a client that can be added to groups.
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuiteID
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  []Extension
	Signature   []byte
}

func (k *KeyPackage) marshalTBS(w *writer) {
	w.u16(uint16(k.Version))
	w.u16(uint16(k.CipherSuite))
	w.opaque(k.InitKey)
	k.LeafNode.marshal(w)
	writeExtensions(w, k.Extensions)
}

func (k *KeyPackage) marshal(w *writer) {
	k.marshalTBS(w)
	w.opaque(k.Signature)
}

func (k *KeyPackage) unmarshal(r *reader) {
	k.Version = ProtocolVersion(r.u16("key_package.version"))
	k.CipherSuite = CipherSuiteID(r.u16("key_package.cipher_suite"))
	k.InitKey = r.opaque("key_package.init_key")
	k.LeafNode.unmarshal(r)
	k.Extensions = readExtensions(r, "key_package.extensions")
	k.Signature = r.opaque("key_package.signature")
}

// ParentNode is an interior node of the ratchet tree.
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []LeafIndex
}

func (p *ParentNode) marshal(w *writer) {
	w.opaque(p.EncryptionKey)
	w.opaque(p.ParentHash)
	writeVector(w, p.UnmergedLeaves, func(w *writer, l LeafIndex) { w.u32(uint32(l)) })
}

func (p *ParentNode) unmarshal(r *reader) {
	p.EncryptionKey = r.opaque("parent_node.encryption_key")
	p.ParentHash = r.opaque("parent_node.parent_hash")
	p.UnmergedLeaves = readVector(r, "parent_node.unmerged_leaves", func(r *reader) LeafIndex {
		return LeafIndex(r.u32("parent_node.unmerged_leaves"))
	})
}

// Node is a non-blank node of a serialized ratchet tree: exactly one of
// Leaf and Parent is set.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

func (n *Node) marshal(w *writer) {
	if n.Leaf != nil {
		w.u8(uint8(NodeLeaf))
		n.Leaf.marshal(w)
	} else {
		w.u8(uint8(NodeParent))
		n.Parent.marshal(w)
	}
}

func (n *Node) unmarshal(r *reader) {
	switch t := NodeType(r.u8("node.type")); t {
	case NodeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.unmarshal(r)
	case NodeParent:
		n.Parent = new(ParentNode)
		n.Parent.unmarshal(r)
	default:
		if r.err == nil {
			r.failf("node.type", "unknown node type %d", t)
		}
	}
}

// EncodeRatchetTree encodes optional<Node> ratchet_tree<V> as carried in
// the ratchet_tree extension. Trailing blank nodes must already be removed.
func EncodeRatchetTree(nodes []*Node) []byte {
	var w writer
	writeVector(&w, nodes, func(w *writer, n *Node) {
		w.optional(n != nil, n.marshal)
	})
	return w.b
}

// DecodeRatchetTree decodes a serialized ratchet tree. It checks the shape
// (leaves at even indices, parents at odd, not ending in a blank) but not
// the tree's cryptographic validity.
func DecodeRatchetTree(b []byte) ([]*Node, error) {
	nodes, err := decodeAll(b, "ratchet_tree", func(r *reader) []*Node {
		return readVector(r, "ratchet_tree", func(r *reader) *Node {
			if !r.optional("ratchet_tree.node") {
				return nil
			}
			n := new(Node)
			n.unmarshal(r)
			return n
		})
	})
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, &DecodeError{Field: "ratchet_tree", Err: errorf(ErrInvalidValue, "empty tree")}
	}
	if len(nodes)%2 == 0 {
		return nil, &DecodeError{Field: "ratchet_tree", Err: errorf(ErrInvalidValue, "even node count %d", len(nodes))}
	}
	if nodes[len(nodes)-1] == nil {
		return nil, &DecodeError{Field: "ratchet_tree", Err: errorf(ErrInvalidValue, "tree ends in a blank node")}
	}
	for i, n := range nodes {
		if n == nil {
			continue
		}
		if (i%2 == 0) != (n.Leaf != nil) {
			return nil, &DecodeError{Field: "ratchet_tree", Err: errorf(ErrInvalidValue, "node %d has the wrong type", i)}
		}
	}
	return nodes, nil
}

// HPKECiphertext is an HPKE encapsulation and ciphertext.
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) marshal(w *writer) {
	w.opaque(c.KEMOutput)
	w.opaque(c.Ciphertext)
}

func (c *HPKECiphertext) unmarshal(r *reader) {
	c.KEMOutput = r.opaque("hpke_ciphertext.kem_output")
	c.Ciphertext = r.opaque("hpke_ciphertext.ciphertext")
}

// UpdatePathNode carries a new parent public key and the path secret
// encrypted to the copath resolution.
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

// UpdatePath is the committer's new direct path.
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (u *UpdatePath) marshal(w *writer) {
	u.LeafNode.marshal(w)
	writeVector(w, u.Nodes, func(w *writer, n UpdatePathNode) {
		w.opaque(n.EncryptionKey)
		writeVector(w, n.EncryptedPathSecret, func(w *writer, c HPKECiphertext) { c.marshal(w) })
	})
}

func (u *UpdatePath) unmarshal(r *reader) {
	u.LeafNode.unmarshal(r)
	u.Nodes = readVector(r, "update_path.nodes", func(r *reader) UpdatePathNode {
		var n UpdatePathNode
		n.EncryptionKey = r.opaque("update_path_node.encryption_key")
		n.EncryptedPathSecret = readVector(r, "update_path_node.encrypted_path_secret", func(r *reader) HPKECiphertext {
			var c HPKECiphertext
			c.unmarshal(r)
			return c
		})
		return n
	})
}

// PreSharedKeyID names a PSK injected into the key schedule.
type PreSharedKeyID struct {
	Type       PSKType
	ExternalID []byte // PSKExternal
	Usage      ResumptionPSKUsage
	GroupID    []byte // PSKResumption
	Epoch      uint64 // PSKResumption
	Nonce      []byte
}

func (p *PreSharedKeyID) marshal(w *writer) {
	w.u8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		w.opaque(p.ExternalID)
	case PSKResumption:
		w.u8(uint8(p.Usage))
		w.opaque(p.GroupID)
		w.u64(p.Epoch)
	}
	w.opaque(p.Nonce)
}

func (p *PreSharedKeyID) unmarshal(r *reader) {
	p.Type = PSKType(r.u8("psk_id.type"))
	switch p.Type {
	case PSKExternal:
		p.ExternalID = r.opaque("psk_id.external_id")
	case PSKResumption:
		p.Usage = ResumptionPSKUsage(r.u8("psk_id.usage"))
		if p.Usage < ResumptionApplication || p.Usage > ResumptionBranch {
			r.failf("psk_id.usage", "unknown resumption usage %d", p.Usage)
		}
		p.GroupID = r.opaque("psk_id.group_id")
		p.Epoch = r.u64("psk_id.epoch")
	default:
		if r.err == nil {
			r.failf("psk_id.type", "unknown psk type %d", p.Type)
		}
	}
	p.Nonce = r.opaque("psk_id.nonce")
}

// Proposal is one proposed change to a group; exactly one of the pointer
// fields matching Type is set.
type Proposal struct {
	Type                   ProposalType
	Add                    *AddProposal
	Update                 *UpdateProposal
	Remove                 *RemoveProposal
	PSK                    *PreSharedKeyID
	ReInit                 *ReInitProposal
	ExternalInit           *ExternalInitProposal
	GroupContextExtensions []Extension // ProposalGroupContextExtensions
}

// AddProposal adds the client of a key package.
type AddProposal struct{ KeyPackage KeyPackage }

// UpdateProposal replaces the sender's leaf node.
type UpdateProposal struct{ LeafNode LeafNode }

// RemoveProposal removes the member at a leaf index.
type RemoveProposal struct{ Removed LeafIndex }

// ReInitProposal asks the group to restart with new parameters.
type ReInitProposal struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuiteID
	Extensions  []Extension
}

// ExternalInitProposal carries the KEM output of an external joiner.
type ExternalInitProposal struct{ KEMOutput []byte }

func (p *Proposal) marshal(w *writer) {
	w.u16(uint16(p.Type))
	p.marshalBody(w)
}

// marshalBody writes the proposal without its type (the Add, Update, ...
// structs on their own).
func (p *Proposal) marshalBody(w *writer) {
	switch p.Type {
	case ProposalAdd:
		p.Add.KeyPackage.marshal(w)
	case ProposalUpdate:
		p.Update.LeafNode.marshal(w)
	case ProposalRemove:
		w.u32(uint32(p.Remove.Removed))
	case ProposalPSK:
		p.PSK.marshal(w)
	case ProposalReInit:
		w.opaque(p.ReInit.GroupID)
		w.u16(uint16(p.ReInit.Version))
		w.u16(uint16(p.ReInit.CipherSuite))
		writeExtensions(w, p.ReInit.Extensions)
	case ProposalExternalInit:
		w.opaque(p.ExternalInit.KEMOutput)
	case ProposalGroupContextExtensions:
		writeExtensions(w, p.GroupContextExtensions)
	default:
		panic("mls: cannot encode unknown proposal type")
	}
}

func (p *Proposal) unmarshal(r *reader) {
	p.Type = ProposalType(r.u16("proposal.type"))
	p.unmarshalBody(r)
}

func (p *Proposal) unmarshalBody(r *reader) {
	switch p.Type {
	case ProposalAdd:
		p.Add = new(AddProposal)
		p.Add.KeyPackage.unmarshal(r)
	case ProposalUpdate:
		p.Update = new(UpdateProposal)
		p.Update.LeafNode.unmarshal(r)
	case ProposalRemove:
		p.Remove = &RemoveProposal{Removed: LeafIndex(r.u32("remove.removed"))}
	case ProposalPSK:
		p.PSK = new(PreSharedKeyID)
		p.PSK.unmarshal(r)
	case ProposalReInit:
		p.ReInit = new(ReInitProposal)
		p.ReInit.GroupID = r.opaque("reinit.group_id")
		p.ReInit.Version = ProtocolVersion(r.u16("reinit.version"))
		p.ReInit.CipherSuite = CipherSuiteID(r.u16("reinit.cipher_suite"))
		p.ReInit.Extensions = readExtensions(r, "reinit.extensions")
	case ProposalExternalInit:
		p.ExternalInit = &ExternalInitProposal{KEMOutput: r.opaque("external_init.kem_output")}
	case ProposalGroupContextExtensions:
		p.GroupContextExtensions = readExtensions(r, "group_context_extensions.extensions")
		if p.GroupContextExtensions == nil {
			p.GroupContextExtensions = []Extension{}
		}
	default:
		if r.err == nil {
			r.failf("proposal.type", "unknown proposal type %d", p.Type)
		}
	}
}

// ProposalOrRef is a proposal inline in a commit or a reference to one
// sent earlier.
type ProposalOrRef struct {
	Proposal  *Proposal // inline
	Reference []byte    // ProposalRef
}

func (p *ProposalOrRef) marshal(w *writer) {
	if p.Proposal != nil {
		w.u8(uint8(ProposalOrRefProposal))
		p.Proposal.marshal(w)
	} else {
		w.u8(uint8(ProposalOrRefReference))
		w.opaque(p.Reference)
	}
}

func (p *ProposalOrRef) unmarshal(r *reader) {
	switch t := ProposalOrRefType(r.u8("proposal_or_ref.type")); t {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		p.Proposal.unmarshal(r)
	case ProposalOrRefReference:
		p.Reference = r.opaque("proposal_or_ref.reference")
	default:
		if r.err == nil {
			r.failf("proposal_or_ref.type", "unknown type %d", t)
		}
	}
}

// Commit applies proposals and optionally refreshes the committer's path.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

func (c *Commit) marshal(w *writer) {
	writeVector(w, c.Proposals, func(w *writer, p ProposalOrRef) { p.marshal(w) })
	w.optional(c.Path != nil, func(w *writer) { c.Path.marshal(w) })
}

func (c *Commit) unmarshal(r *reader) {
	c.Proposals = readVector(r, "commit.proposals", func(r *reader) ProposalOrRef {
		var p ProposalOrRef
		p.unmarshal(r)
		return p
	})
	if r.optional("commit.path") {
		c.Path = new(UpdatePath)
		c.Path.unmarshal(r)
	}
}

// GroupContext summarises a group's state in an epoch.
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuiteID
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

func (g *GroupContext) marshal(w *writer) {
	w.u16(uint16(g.Version))
	w.u16(uint16(g.CipherSuite))
	w.opaque(g.GroupID)
	w.u64(g.Epoch)
	w.opaque(g.TreeHash)
	w.opaque(g.ConfirmedTranscriptHash)
	writeExtensions(w, g.Extensions)
}

func (g *GroupContext) unmarshal(r *reader) {
	g.Version = ProtocolVersion(r.u16("group_context.version"))
	g.CipherSuite = CipherSuiteID(r.u16("group_context.cipher_suite"))
	g.GroupID = r.opaque("group_context.group_id")
	g.Epoch = r.u64("group_context.epoch")
	g.TreeHash = r.opaque("group_context.tree_hash")
	g.ConfirmedTranscriptHash = r.opaque("group_context.confirmed_transcript_hash")
	g.Extensions = readExtensions(r, "group_context.extensions")
}

// GroupInfo lets a new member (or external joiner) learn the group state.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          LeafIndex
	Signature       []byte
}

func (g *GroupInfo) marshalTBS(w *writer) {
	g.GroupContext.marshal(w)
	writeExtensions(w, g.Extensions)
	w.opaque(g.ConfirmationTag)
	w.u32(uint32(g.Signer))
}

func (g *GroupInfo) marshal(w *writer) {
	g.marshalTBS(w)
	w.opaque(g.Signature)
}

func (g *GroupInfo) unmarshal(r *reader) {
	g.GroupContext.unmarshal(r)
	g.Extensions = readExtensions(r, "group_info.extensions")
	g.ConfirmationTag = r.opaque("group_info.confirmation_tag")
	g.Signer = LeafIndex(r.u32("group_info.signer"))
	g.Signature = r.opaque("group_info.signature")
}

// GroupSecrets are encrypted to each new member in a Welcome.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte // nil when absent
	PSKs         []PreSharedKeyID
}

func (g *GroupSecrets) marshal(w *writer) {
	w.opaque(g.JoinerSecret)
	w.optional(g.PathSecret != nil, func(w *writer) { w.opaque(g.PathSecret) })
	writeVector(w, g.PSKs, func(w *writer, p PreSharedKeyID) { p.marshal(w) })
}

func (g *GroupSecrets) unmarshal(r *reader) {
	g.JoinerSecret = r.opaque("group_secrets.joiner_secret")
	if r.optional("group_secrets.path_secret") {
		g.PathSecret = r.opaque("group_secrets.path_secret")
	}
	g.PSKs = readVector(r, "group_secrets.psks", func(r *reader) PreSharedKeyID {
		var p PreSharedKeyID
		p.unmarshal(r)
		return p
	})
}

// EncryptedGroupSecrets is one new member's entry in a Welcome.
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

// Welcome brings new members into a group.
type Welcome struct {
	CipherSuite        CipherSuiteID
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (m *Welcome) marshal(w *writer) {
	w.u16(uint16(m.CipherSuite))
	writeVector(w, m.Secrets, func(w *writer, s EncryptedGroupSecrets) {
		w.opaque(s.NewMember)
		s.EncryptedGroupSecrets.marshal(w)
	})
	w.opaque(m.EncryptedGroupInfo)
}

func (m *Welcome) unmarshal(r *reader) {
	m.CipherSuite = CipherSuiteID(r.u16("welcome.cipher_suite"))
	m.Secrets = readVector(r, "welcome.secrets", func(r *reader) EncryptedGroupSecrets {
		var s EncryptedGroupSecrets
		s.NewMember = r.opaque("welcome.secrets.new_member")
		s.EncryptedGroupSecrets.unmarshal(r)
		return s
	})
	m.EncryptedGroupInfo = r.opaque("welcome.encrypted_group_info")
}

// ExternalSender is an entry of the external_senders extension.
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// RequiredCapabilities is the required_capabilities extension.
type RequiredCapabilities struct {
	Extensions  []ExtensionType
	Proposals   []ProposalType
	Credentials []CredentialType
}

func (c *RequiredCapabilities) marshal(w *writer) {
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

func (c *RequiredCapabilities) unmarshal(r *reader) {
	c.Extensions = readU16s[ExtensionType](r, "required_capabilities.extensions")
	c.Proposals = readU16s[ProposalType](r, "required_capabilities.proposals")
	c.Credentials = readU16s[CredentialType](r, "required_capabilities.credentials")
}

// DecodeRequiredCapabilities parses the required_capabilities extension.
func DecodeRequiredCapabilities(b []byte) (RequiredCapabilities, error) {
	return decodeAll(b, "required_capabilities", func(r *reader) RequiredCapabilities {
		var c RequiredCapabilities
		c.unmarshal(r)
		return c
	})
}

// EncodeExternalSenders encodes the external_senders extension data.
func EncodeExternalSenders(s []ExternalSender) []byte {
	var w writer
	writeVector(&w, s, func(w *writer, e ExternalSender) {
		w.opaque(e.SignatureKey)
		e.Credential.marshal(w)
	})
	return w.b
}

// DecodeExternalSenders parses the external_senders extension.
func DecodeExternalSenders(b []byte) ([]ExternalSender, error) {
	return decodeAll(b, "external_senders", func(r *reader) []ExternalSender {
		return readVector(r, "external_senders", func(r *reader) ExternalSender {
			var e ExternalSender
			e.SignatureKey = r.opaque("external_sender.signature_key")
			e.Credential.unmarshal(r)
			return e
		})
	})
}
