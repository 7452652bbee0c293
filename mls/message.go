package mls

import "fmt"

// This file declares the framing wire types of RFC 9420 section 6.

// errorf wraps a sentinel with a formatted detail.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}

// Sender of framed content.
type Sender struct {
	Type        SenderType
	LeafIndex   LeafIndex // SenderMember
	SenderIndex uint32    // SenderExternal: index into external_senders
}

func (s *Sender) marshal(w *writer) {
	w.u8(uint8(s.Type))
	switch s.Type {
	case SenderMember:
		w.u32(uint32(s.LeafIndex))
	case SenderExternal:
		w.u32(s.SenderIndex)
	}
}

func (s *Sender) unmarshal(r *reader) {
	s.Type = SenderType(r.u8("sender.type"))
	switch s.Type {
	case SenderMember:
		s.LeafIndex = LeafIndex(r.u32("sender.leaf_index"))
	case SenderExternal:
		s.SenderIndex = r.u32("sender.sender_index")
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		if r.err == nil {
			r.failf("sender.type", "unknown sender type %d", s.Type)
		}
	}
}

// FramedContent is the content of a handshake or application message
// before protection.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	Application       []byte    // ContentApplication
	Proposal          *Proposal // ContentProposal
	Commit            *Commit   // ContentCommit
}

func (c *FramedContent) marshal(w *writer) {
	w.opaque(c.GroupID)
	w.u64(c.Epoch)
	c.Sender.marshal(w)
	w.opaque(c.AuthenticatedData)
	w.u8(uint8(c.ContentType))
	c.marshalBody(w)
}

// marshalBody writes the content-type specific body.
func (c *FramedContent) marshalBody(w *writer) {
	switch c.ContentType {
	case ContentApplication:
		w.opaque(c.Application)
	case ContentProposal:
		c.Proposal.marshal(w)
	case ContentCommit:
		c.Commit.marshal(w)
	default:
		panic("mls: cannot encode unknown content type")
	}
}

func (c *FramedContent) unmarshal(r *reader) {
	c.GroupID = r.opaque("framed_content.group_id")
	c.Epoch = r.u64("framed_content.epoch")
	c.Sender.unmarshal(r)
	c.AuthenticatedData = r.opaque("framed_content.authenticated_data")
	c.ContentType = ContentType(r.u8("framed_content.content_type"))
	c.unmarshalBody(r)
}

func (c *FramedContent) unmarshalBody(r *reader) {
	switch c.ContentType {
	case ContentApplication:
		c.Application = r.opaque("framed_content.application_data")
	case ContentProposal:
		c.Proposal = new(Proposal)
		c.Proposal.unmarshal(r)
	case ContentCommit:
		c.Commit = new(Commit)
		c.Commit.unmarshal(r)
	default:
		if r.err == nil {
			r.failf("framed_content.content_type", "unknown content type %d", c.ContentType)
		}
	}
}

// FramedContentAuthData is the signature and, for commits, the
// confirmation tag.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // ContentCommit only
}

func (a *FramedContentAuthData) marshal(w *writer, ct ContentType) {
	w.opaque(a.Signature)
	if ct == ContentCommit {
		w.opaque(a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(r *reader, ct ContentType) {
	a.Signature = r.opaque("auth.signature")
	if ct == ContentCommit {
		a.ConfirmationTag = r.opaque("auth.confirmation_tag")
	}
}

// AuthenticatedContent is framed content with its wire format and
// authentication data; transcript hashes and proposal references are
// computed over it.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (a *AuthenticatedContent) marshal(w *writer) {
	w.u16(uint16(a.WireFormat))
	a.Content.marshal(w)
	a.Auth.marshal(w, a.Content.ContentType)
}

func (a *AuthenticatedContent) unmarshal(r *reader) {
	a.WireFormat = WireFormat(r.u16("authenticated_content.wire_format"))
	a.Content.unmarshal(r)
	a.Auth.unmarshal(r, a.Content.ContentType)
}

// DecodeAuthenticatedContent parses an AuthenticatedContent.
func DecodeAuthenticatedContent(b []byte) (*AuthenticatedContent, error) {
	return decodeAll(b, "authenticated_content", func(r *reader) *AuthenticatedContent {
		a := new(AuthenticatedContent)
		a.unmarshal(r)
		return a
	})
}

// tbs returns FramedContentTBS: what the sender signs.
func (a *AuthenticatedContent) tbs(ctx *GroupContext) []byte {
	w := writer{b: make([]byte, 0, a.tbsSizeHint(ctx))}
	a.appendTBS(&w, ctx)
	return w.b
}

// signContent returns the SignContent of FramedContentTBS (label
// "FramedContentTBS"), built in one buffer: what ed25519 signs.
func (a *AuthenticatedContent) signContent(ctx *GroupContext) []byte {
	return buildSignContent(framedContentTBSLabel, a.tbsSizeHint(ctx), func(w *writer) { a.appendTBS(w, ctx) })
}

func (a *AuthenticatedContent) appendTBS(w *writer, ctx *GroupContext) {
	w.u16(uint16(ProtocolMLS10))
	w.u16(uint16(a.WireFormat))
	a.Content.marshal(w)
	if a.Content.Sender.Type == SenderMember || a.Content.Sender.Type == SenderNewMemberCommit {
		ctx.marshal(w)
	}
}

// tbsSizeHint is a little more than the length of FramedContentTBS for
// application content, so the buffer it is built in is not reallocated;
// proposals and commits, which are not counted, grow it as needed.
func (a *AuthenticatedContent) tbsSizeHint(ctx *GroupContext) int {
	c := &a.Content
	n := 64 + len(c.GroupID) + len(c.AuthenticatedData) + len(c.Application)
	if ctx != nil {
		n += 64 + len(ctx.GroupID) + len(ctx.TreeHash) + len(ctx.ConfirmedTranscriptHash)
		for _, e := range ctx.Extensions {
			n += 8 + len(e.Data)
		}
	}
	return n
}

// PublicMessage is a signed, unencrypted handshake message.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // SenderMember only
}

func (m *PublicMessage) marshal(w *writer) {
	m.Content.marshal(w)
	m.Auth.marshal(w, m.Content.ContentType)
	if m.Content.Sender.Type == SenderMember {
		w.opaque(m.MembershipTag)
	}
}

func (m *PublicMessage) unmarshal(r *reader) {
	m.Content.unmarshal(r)
	m.Auth.unmarshal(r, m.Content.ContentType)
	if m.Content.Sender.Type == SenderMember {
		m.MembershipTag = r.opaque("public_message.membership_tag")
	}
}

// PrivateMessage is an encrypted message.
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (m *PrivateMessage) marshal(w *writer) {
	w.opaque(m.GroupID)
	w.u64(m.Epoch)
	w.u8(uint8(m.ContentType))
	w.opaque(m.AuthenticatedData)
	w.opaque(m.EncryptedSenderData)
	w.opaque(m.Ciphertext)
}

func (m *PrivateMessage) unmarshal(r *reader) {
	m.GroupID = r.opaque("private_message.group_id")
	m.Epoch = r.u64("private_message.epoch")
	m.ContentType = ContentType(r.u8("private_message.content_type"))
	if r.err == nil && (m.ContentType < ContentApplication || m.ContentType > ContentCommit) {
		r.failf("private_message.content_type", "unknown content type %d", m.ContentType)
	}
	m.AuthenticatedData = r.opaque("private_message.authenticated_data")
	m.EncryptedSenderData = r.opaque("private_message.encrypted_sender_data")
	m.Ciphertext = r.opaque("private_message.ciphertext")
}

// SenderData is encrypted under the sender-data key of a PrivateMessage.
type SenderData struct {
	LeafIndex  LeafIndex
	Generation uint32
	ReuseGuard [4]byte
}

func (s *SenderData) marshal(w *writer) {
	w.u32(uint32(s.LeafIndex))
	w.u32(s.Generation)
	w.raw(s.ReuseGuard[:])
}

func (s *SenderData) unmarshal(r *reader) {
	s.LeafIndex = LeafIndex(r.u32("sender_data.leaf_index"))
	s.Generation = r.u32("sender_data.generation")
	copy(s.ReuseGuard[:], r.take("sender_data.reuse_guard", 4))
}

// MLSMessage is the top-level wire message; exactly one body field
// matching WireFormat is set.
type MLSMessage struct {
	Version    ProtocolVersion
	WireFormat WireFormat
	Public     *PublicMessage
	Private    *PrivateMessage
	Welcome    *Welcome
	GroupInfo  *GroupInfo
	KeyPackage *KeyPackage
}

func (m *MLSMessage) marshal(w *writer) {
	w.u16(uint16(m.Version))
	w.u16(uint16(m.WireFormat))
	switch m.WireFormat {
	case WirePublicMessage:
		m.Public.marshal(w)
	case WirePrivateMessage:
		m.Private.marshal(w)
	case WireWelcome:
		m.Welcome.marshal(w)
	case WireGroupInfo:
		m.GroupInfo.marshal(w)
	case WireKeyPackage:
		m.KeyPackage.marshal(w)
	default:
		panic("mls: cannot encode unknown wire format")
	}
}

func (m *MLSMessage) unmarshal(r *reader) {
	m.Version = ProtocolVersion(r.u16("mls_message.version"))
	if r.err == nil && m.Version != ProtocolMLS10 {
		r.failf("mls_message.version", "unsupported protocol version %d", m.Version)
	}
	m.WireFormat = WireFormat(r.u16("mls_message.wire_format"))
	switch m.WireFormat {
	case WirePublicMessage:
		m.Public = new(PublicMessage)
		m.Public.unmarshal(r)
	case WirePrivateMessage:
		m.Private = new(PrivateMessage)
		m.Private.unmarshal(r)
	case WireWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.unmarshal(r)
	case WireGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.unmarshal(r)
	case WireKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.unmarshal(r)
	default:
		if r.err == nil {
			r.failf("mls_message.wire_format", "unknown wire format %d", m.WireFormat)
		}
	}
}

// Encode returns the wire encoding of the message.
func (m *MLSMessage) Encode() []byte { return encode(m) }

// DecodeMLSMessage parses a complete MLSMessage.
func DecodeMLSMessage(b []byte) (*MLSMessage, error) {
	return decodeAll(b, "mls_message", func(r *reader) *MLSMessage {
		m := new(MLSMessage)
		m.unmarshal(r)
		return m
	})
}

// unmarshaler is implemented by pointer wire types.
type unmarshaler interface {
	marshaler
	unmarshal(r *reader)
}

// decodeInto parses b completely into v.
func decodeInto(b []byte, field string, v unmarshaler) error {
	r := newReader(b)
	v.unmarshal(r)
	return r.done(field)
}

// Encoders and decoders for the standalone wire structs.

func (k *KeyPackage) Encode() []byte   { return encode(k) }
func (g *GroupInfo) Encode() []byte    { return encode(g) }
func (g *GroupSecrets) Encode() []byte { return encode(g) }
func (p *Proposal) Encode() []byte     { return encode(p) }
func (c *Commit) Encode() []byte       { return encode(c) }
func (m *Welcome) Encode() []byte      { return encode(m) }
func (l *LeafNode) Encode() []byte     { return encode(l) }
func (u *UpdatePath) Encode() []byte   { return encode(u) }
func (g *GroupContext) Encode() []byte { return encode(g) }
func (a *AuthenticatedContent) Encode() []byte {
	return encode(a)
}

func DecodeKeyPackage(b []byte) (*KeyPackage, error) {
	v := new(KeyPackage)
	return v, decodeInto(b, "key_package", v)
}

func DecodeGroupInfo(b []byte) (*GroupInfo, error) {
	v := new(GroupInfo)
	return v, decodeInto(b, "group_info", v)
}

func DecodeGroupSecrets(b []byte) (*GroupSecrets, error) {
	v := new(GroupSecrets)
	return v, decodeInto(b, "group_secrets", v)
}

func DecodeProposal(b []byte) (*Proposal, error) {
	v := new(Proposal)
	return v, decodeInto(b, "proposal", v)
}

func DecodeCommit(b []byte) (*Commit, error) {
	v := new(Commit)
	return v, decodeInto(b, "commit", v)
}

func DecodeUpdatePath(b []byte) (*UpdatePath, error) {
	v := new(UpdatePath)
	return v, decodeInto(b, "update_path", v)
}

func DecodeGroupContext(b []byte) (*GroupContext, error) {
	v := new(GroupContext)
	return v, decodeInto(b, "group_context", v)
}
