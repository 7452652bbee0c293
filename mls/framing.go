package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// This file protects and unprotects framed content (RFC 9420 sections 6.1
// to 6.3): signatures over FramedContentTBS, the membership tag of a
// PublicMessage, and the encryption of a PrivateMessage under the secret
// tree and the sender-data key.

// Errors of message framing. They are wrapped with context; match them
// with errors.Is.
var (
	// ErrInvalidMessage is returned for a message that is malformed or
	// does not fit the group (wrong wire format, sender, content type,
	// padding, leaf index).
	ErrInvalidMessage = errors.New("mls: invalid message")
	// ErrMembershipTag is returned when a PublicMessage's membership tag
	// does not verify.
	ErrMembershipTag = errors.New("mls: bad membership tag")
	// ErrPublicApplication is returned when application data would be
	// sent or received as a PublicMessage, which RFC 9420 forbids.
	ErrPublicApplication = errors.New("mls: application data in a PublicMessage")
	// ErrNoGroupContext is returned when a member or new-member-commit
	// sender's content is signed or verified without a GroupContext.
	ErrNoGroupContext = errors.New("mls: group context required")
)

const framedContentTBSLabel = "FramedContentTBS"

// reuseGuardLen is the size of the PrivateMessage reuse guard.
const reuseGuardLen = 4

// needsContext reports whether FramedContentTBS includes the
// GroupContext for this sender type.
func needsContext(t SenderType) bool {
	return t == SenderMember || t == SenderNewMemberCommit
}

// signFramedContent signs ac's FramedContentTBS (label "FramedContentTBS")
// and sets ac.Auth.Signature. ac.WireFormat must already be the wire
// format the content will be sent in. ctx is required for member and
// new_member_commit senders and ignored otherwise.
func signFramedContent(s *CipherSuite, priv SignaturePrivateKey, ac *AuthenticatedContent, ctx *GroupContext) error {
	if needsContext(ac.Content.Sender.Type) && ctx == nil {
		return fmt.Errorf("signing framed content: %w", ErrNoGroupContext)
	}
	sig, err := s.signContent(priv, ac.signContent(ctx))
	if err != nil {
		return fmt.Errorf("signing framed content: %w", err)
	}
	ac.Auth.Signature = sig
	return nil
}

// verifyFramedContent checks ac's signature with the sender's signature
// public key.
func verifyFramedContent(s *CipherSuite, pub []byte, ac *AuthenticatedContent, ctx *GroupContext) error {
	if needsContext(ac.Content.Sender.Type) && ctx == nil {
		return fmt.Errorf("verifying framed content: %w", ErrNoGroupContext)
	}
	if err := s.verifyContent(pub, ac.signContent(ctx), ac.Auth.Signature); err != nil {
		return fmt.Errorf("verifying framed content signature: %w", err)
	}
	return nil
}

// checkContentType rejects content types other than application, proposal
// and commit, and a missing body.
func checkContent(c *FramedContent) error {
	switch c.ContentType {
	case ContentApplication:
		return nil
	case ContentProposal:
		if c.Proposal == nil {
			return errorf(ErrInvalidMessage, "proposal content without a proposal")
		}
		return nil
	case ContentCommit:
		if c.Commit == nil {
			return errorf(ErrInvalidMessage, "commit content without a commit")
		}
		return nil
	}
	return errorf(ErrInvalidMessage, "unknown content type %d", c.ContentType)
}

// checkEpoch rejects content that is not for ctx's group and epoch.
func checkEpoch(groupID []byte, epoch uint64, ctx *GroupContext) error {
	if ctx == nil {
		return nil
	}
	if !bytes.Equal(groupID, ctx.GroupID) {
		return errorf(ErrInvalidMessage, "message for another group")
	}
	if epoch != ctx.Epoch {
		return errorf(ErrInvalidMessage, "message for epoch %d, group is in epoch %d", epoch, ctx.Epoch)
	}
	return nil
}

// membershipTBM returns AuthenticatedContentTBM: FramedContentTBS followed
// by the FramedContentAuthData.
func membershipTBM(ac *AuthenticatedContent, ctx *GroupContext) []byte {
	tbm := ac.tbs(ctx)
	var w writer
	w.b = tbm
	ac.Auth.marshal(&w, ac.Content.ContentType)
	return w.b
}

// protectPublic wraps signed content in a PublicMessage, adding the
// membership tag for member senders. Application content is refused.
func protectPublic(s *CipherSuite, ac *AuthenticatedContent, membershipKey []byte, ctx *GroupContext) (*PublicMessage, error) {
	if ac.Content.ContentType == ContentApplication {
		return nil, fmt.Errorf("protecting public message: %w", ErrPublicApplication)
	}
	if err := checkContent(&ac.Content); err != nil {
		return nil, fmt.Errorf("protecting public message: %w", err)
	}
	if ac.WireFormat != WirePublicMessage {
		return nil, fmt.Errorf("protecting public message: %w", errorf(ErrInvalidMessage, "content signed for wire format %d", ac.WireFormat))
	}
	if ac.Content.Sender.Type < SenderMember || ac.Content.Sender.Type > SenderNewMemberCommit {
		return nil, fmt.Errorf("protecting public message: %w", errorf(ErrInvalidMessage, "unknown sender type %d", ac.Content.Sender.Type))
	}
	if needsContext(ac.Content.Sender.Type) && ctx == nil {
		return nil, fmt.Errorf("protecting public message: %w", ErrNoGroupContext)
	}
	if ac.Content.ContentType == ContentCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return nil, fmt.Errorf("protecting public message: %w", errorf(ErrInvalidMessage, "commit without a confirmation tag"))
	}
	m := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == SenderMember {
		m.MembershipTag = s.MAC(membershipKey, membershipTBM(ac, ctx))
	}
	return m, nil
}

// unprotectPublic checks a PublicMessage's membership tag (member senders)
// and returns its AuthenticatedContent. The caller verifies the signature
// with the sender's key.
func unprotectPublic(s *CipherSuite, m *PublicMessage, membershipKey []byte, ctx *GroupContext) (*AuthenticatedContent, error) {
	if m.Content.ContentType == ContentApplication {
		return nil, fmt.Errorf("unprotecting public message: %w", ErrPublicApplication)
	}
	if err := checkContent(&m.Content); err != nil {
		return nil, fmt.Errorf("unprotecting public message: %w", err)
	}
	if needsContext(m.Content.Sender.Type) && ctx == nil {
		return nil, fmt.Errorf("unprotecting public message: %w", ErrNoGroupContext)
	}
	if err := checkEpoch(m.Content.GroupID, m.Content.Epoch, ctx); err != nil {
		return nil, fmt.Errorf("unprotecting public message: %w", err)
	}
	ac := &AuthenticatedContent{WireFormat: WirePublicMessage, Content: m.Content, Auth: m.Auth}
	if m.Content.Sender.Type == SenderMember {
		if !s.verifyMAC(membershipKey, membershipTBM(ac, ctx), m.MembershipTag) {
			return nil, fmt.Errorf("unprotecting public message from leaf %d: %w", m.Content.Sender.LeafIndex, ErrMembershipTag)
		}
	}
	return ac, nil
}

// privateContentAAD encodes PrivateContentAAD.
func privateContentAAD(groupID []byte, epoch uint64, ct ContentType, authenticatedData []byte) []byte {
	w := writer{b: make([]byte, 0, 16+len(groupID)+len(authenticatedData))}
	w.opaque(groupID)
	w.u64(epoch)
	w.u8(uint8(ct))
	w.opaque(authenticatedData)
	return w.b
}

// senderDataAAD encodes SenderDataAAD.
func senderDataAAD(groupID []byte, epoch uint64, ct ContentType) []byte {
	w := writer{b: make([]byte, 0, 16+len(groupID))}
	w.opaque(groupID)
	w.u64(epoch)
	w.u8(uint8(ct))
	return w.b
}

// marshalPrivateContent appends PrivateMessageContent: the body for c's
// content type, the auth data and padding zero bytes.
func marshalPrivateContent(w *writer, c *FramedContent, auth *FramedContentAuthData, padding int) {
	c.marshalBody(w)
	auth.marshal(w, c.ContentType)
	w.b = append(w.b, make([]byte, padding)...)
}

// decodePrivateContent parses a decrypted PrivateMessageContent of content
// type ct strictly (application data points into b, which the caller
// must not reuse): everything after the auth data is padding and must be
// zero. It returns a FramedContent with only ContentType and the body set,
// the auth data and the padding length.
func decodePrivateContent(ct ContentType, b []byte) (FramedContent, FramedContentAuthData, int, error) {
	var c FramedContent
	var auth FramedContentAuthData
	if ct < ContentApplication || ct > ContentCommit {
		return c, auth, 0, errorf(ErrInvalidMessage, "unknown content type %d", ct)
	}
	c.ContentType = ct
	// b is the plaintext just decrypted into a buffer of its own, so
	// application data points into it instead of being copied. Proposals
	// and commits are rare and their decoded values are kept in the group
	// state, so they are still copied.
	r := &reader{b: b, alias: ct == ContentApplication}
	c.unmarshalBody(r)
	auth.unmarshal(r, ct)
	if r.err != nil {
		return FramedContent{}, FramedContentAuthData{}, 0, fmt.Errorf("decoding private message content: %w", r.err)
	}
	for i, v := range r.b {
		if v != 0 {
			return FramedContent{}, FramedContentAuthData{}, 0,
				errorf(ErrInvalidMessage, "private message content: padding byte %d is %#x, not zero", i, v)
		}
	}
	return c, auth, len(r.b), nil
}

// protectPrivate encrypts signed content from a member as a
// PrivateMessage with padding zero bytes of padding, using the sender's
// next key from st and a reuse guard read from rand.
func protectPrivate(s *CipherSuite, ac *AuthenticatedContent, st *secretTree, senderDataSecret []byte, padding int, rand io.Reader) (*PrivateMessage, uint32, error) {
	c := &ac.Content
	if err := checkContent(c); err != nil {
		return nil, 0, fmt.Errorf("protecting private message: %w", err)
	}
	if ac.WireFormat != WirePrivateMessage {
		return nil, 0, fmt.Errorf("protecting private message: %w", errorf(ErrInvalidMessage, "content signed for wire format %d", ac.WireFormat))
	}
	if c.Sender.Type != SenderMember {
		return nil, 0, fmt.Errorf("protecting private message: %w", errorf(ErrInvalidMessage, "sender type %d cannot send private messages", c.Sender.Type))
	}
	if padding < 0 {
		return nil, 0, fmt.Errorf("protecting private message: negative padding %d", padding)
	}
	if c.ContentType == ContentCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return nil, 0, fmt.Errorf("protecting private message: %w", errorf(ErrInvalidMessage, "commit without a confirmation tag"))
	}
	var guard [reuseGuardLen]byte
	if _, err := io.ReadFull(rand, guard[:]); err != nil {
		return nil, 0, fmt.Errorf("protecting private message: reading reuse guard: %w", err)
	}
	key, nonce, gen, err := st.next(c.Sender.LeafIndex, c.ContentType)
	if err != nil {
		return nil, 0, fmt.Errorf("protecting private message: %w", err)
	}
	defer keyNonce{key, nonce}.wipe()
	for i := range guard {
		nonce[i] ^= guard[i]
	}

	// Room for the body and auth data with their length prefixes (at most
	// 4 bytes each), the padding and the AEAD tag, so the content is
	// encrypted in place, overwriting the plaintext.
	pt := writer{b: make([]byte, 0, len(c.Application)+len(ac.Auth.Signature)+len(ac.Auth.ConfirmationTag)+padding+64)}
	marshalPrivateContent(&pt, c, &ac.Auth, padding)
	ciphertext, err := s.sealAEADInPlace(key, nonce, privateContentAAD(c.GroupID, c.Epoch, c.ContentType, c.AuthenticatedData), pt.b)
	if err != nil {
		clear(pt.b)
		return nil, 0, fmt.Errorf("protecting private message: %w", err)
	}

	var sd writer
	(&SenderData{LeafIndex: c.Sender.LeafIndex, Generation: gen, ReuseGuard: guard}).marshal(&sd)
	sdKey, sdNonce := s.senderDataKeyNonce(senderDataSecret, ciphertext)
	encSD, err := s.sealAEAD(sdKey, sdNonce, senderDataAAD(c.GroupID, c.Epoch, c.ContentType), sd.b)
	if err != nil {
		return nil, 0, fmt.Errorf("protecting private message: sender data: %w", err)
	}
	return &PrivateMessage{
		GroupID:             c.GroupID,
		Epoch:               c.Epoch,
		ContentType:         c.ContentType,
		AuthenticatedData:   c.AuthenticatedData,
		EncryptedSenderData: encSD,
		Ciphertext:          ciphertext,
	}, gen, nil
}

// unprotectPrivate decrypts a PrivateMessage's sender data and content and
// returns the AuthenticatedContent. A generation's key is deleted only
// once its content decrypts. The caller checks that the sender's leaf is
// not blank and verifies the signature.
func unprotectPrivate(s *CipherSuite, m *PrivateMessage, st *secretTree, senderDataSecret []byte) (*AuthenticatedContent, uint32, error) {
	if m.ContentType < ContentApplication || m.ContentType > ContentCommit {
		return nil, 0, fmt.Errorf("unprotecting private message: %w", errorf(ErrInvalidMessage, "unknown content type %d", m.ContentType))
	}
	sdKey, sdNonce := s.senderDataKeyNonce(senderDataSecret, m.Ciphertext)
	sdBytes, err := s.openAEAD(sdKey, sdNonce, senderDataAAD(m.GroupID, m.Epoch, m.ContentType), m.EncryptedSenderData)
	if err != nil {
		return nil, 0, fmt.Errorf("unprotecting private message: sender data: %w", err)
	}
	var sd SenderData
	if err := decodeInto(sdBytes, "sender_data", &sd); err != nil {
		return nil, 0, fmt.Errorf("unprotecting private message: %w: %w", ErrInvalidMessage, err)
	}
	if uint32(sd.LeafIndex) >= st.nLeaves {
		return nil, 0, fmt.Errorf("unprotecting private message: %w",
			errorf(ErrInvalidMessage, "sender leaf %d outside a tree of %d leaves", sd.LeafIndex, st.nLeaves))
	}

	var pt []byte
	err = st.open(sd.LeafIndex, m.ContentType, sd.Generation, func(key, nonce []byte) error {
		var nonceBuf [32]byte
		n := append(nonceBuf[:0], nonce...)
		for i := range sd.ReuseGuard {
			n[i] ^= sd.ReuseGuard[i]
		}
		var err error
		pt, err = s.openAEAD(key, n, privateContentAAD(m.GroupID, m.Epoch, m.ContentType, m.AuthenticatedData), m.Ciphertext)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("unprotecting private message from leaf %d generation %d: %w", sd.LeafIndex, sd.Generation, err)
	}

	c, auth, _, err := decodePrivateContent(m.ContentType, pt)
	if err != nil {
		return nil, 0, fmt.Errorf("unprotecting private message from leaf %d: %w", sd.LeafIndex, err)
	}
	c.GroupID = m.GroupID
	c.Epoch = m.Epoch
	c.Sender = Sender{Type: SenderMember, LeafIndex: sd.LeafIndex}
	c.AuthenticatedData = m.AuthenticatedData
	return &AuthenticatedContent{WireFormat: WirePrivateMessage, Content: c, Auth: auth}, sd.Generation, nil
}
