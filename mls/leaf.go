package mls

import (
	"bytes"
	"fmt"
	"time"
)

// This file validates leaf nodes (RFC 9420 section 7.3) against a group's
// ratchet tree, and checks leaf signatures.

// CredentialValidator decides whether a credential is acceptable and bound
// to the signature key (RFC 9420 section 5.3.1). anom checks device
// certificates against the network root here. It returns nil to accept.
type CredentialValidator func(c *Credential, signatureKey []byte) error

// leafSignLabel is the label of the LeafNode signature.
const leafSignLabel = "LeafNodeTBS"

// signLeaf signs l in place for the given group and leaf index (ignored
// for key package leaves).
func signLeaf(s *CipherSuite, l *LeafNode, priv SignaturePrivateKey, groupID []byte, idx LeafIndex) error {
	sig, err := s.SignWithLabel(priv, leafSignLabel, l.tbs(groupID, idx))
	if err != nil {
		return fmt.Errorf("signing leaf node: %w", err)
	}
	l.Signature = sig
	return nil
}

// verifyLeafSignature checks the signature of l as the leaf at idx.
func verifyLeafSignature(s *CipherSuite, l *LeafNode, groupID []byte, idx LeafIndex) error {
	return s.VerifyWithLabel(l.SignatureKey, leafSignLabel, l.tbs(groupID, idx), l.Signature)
}

// verifyLeafSignatures checks the signature of every non-blank leaf, with
// groupID and the leaf's index as context for update and commit leaves.
func (t *ratchetTree) verifyLeafSignatures(groupID []byte) error {
	for i, l := range t.leaves() {
		if err := verifyLeafSignature(t.suite, l, groupID, i); err != nil {
			return fmt.Errorf("verifying leaf %d: %w: %w", i, ErrInvalidLeaf, err)
		}
	}
	return nil
}

// Default extension and proposal types (RFC 9420 section 7.2) are
// supported by every client and need not be listed in capabilities.
func defaultExtension(e ExtensionType) bool {
	return e >= ExtApplicationID && e <= ExtExternalSenders
}

func defaultProposal(p ProposalType) bool {
	return p >= ProposalAdd && p <= ProposalGroupContextExtensions
}

func hasU16[T ~uint16](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// supportsExtension reports whether the capabilities of l cover extension
// type e.
func leafSupportsExtension(l *LeafNode, e ExtensionType) bool {
	return defaultExtension(e) || hasU16(l.Capabilities.Extensions, e)
}

// leafSupportsGroupExtensions checks that l supports every extension of
// the group context (RFC 9420 sections 7.3 and 12.1.7). The group state
// calls it with the current (or proposed) group context extensions.
func leafSupportsGroupExtensions(l *LeafNode, exts []Extension) error {
	for _, e := range exts {
		if !leafSupportsExtension(l, e.Type) {
			return fmt.Errorf("%w: leaf does not support group context extension %d", ErrInvalidLeaf, e.Type)
		}
	}
	return nil
}

// leafSupportsRequired checks l against a required_capabilities extension.
func leafSupportsRequired(l *LeafNode, req *RequiredCapabilities) error {
	if req == nil {
		return nil
	}
	for _, e := range req.Extensions {
		if !leafSupportsExtension(l, e) {
			return fmt.Errorf("%w: required extension %d not supported", ErrInvalidLeaf, e)
		}
	}
	for _, p := range req.Proposals {
		if !defaultProposal(p) && !hasU16(l.Capabilities.Proposals, p) {
			return fmt.Errorf("%w: required proposal %d not supported", ErrInvalidLeaf, p)
		}
	}
	for _, c := range req.Credentials {
		if !hasU16(l.Capabilities.Credentials, c) {
			return fmt.Errorf("%w: required credential type %d not supported", ErrInvalidLeaf, c)
		}
	}
	return nil
}

// validateLeaf checks a leaf node that is to sit at leaf index idx
// (RFC 9420 section 7.3): its source is src; its credential passes
// validate (skipped when validate is nil); its signature verifies, bound to
// groupID and idx for update and commit leaves; a key package leaf's
// lifetime covers now (a zero now skips this: the key package leaves of an
// existing tree may have expired since their members joined); its capabilities include the group's version and
// cipher suite, the required capabilities, the credential types of all
// other members and the extensions it carries; every other member supports
// its credential type; and its encryption and signature keys are not used
// elsewhere in the tree. For update and commit leaves the encryption key
// must also differ from the one it replaces. Group context extension
// support is checked separately by leafSupportsGroupExtensions.
func (t *ratchetTree) validateLeaf(l *LeafNode, src LeafNodeSource, groupID []byte, idx LeafIndex, now time.Time, required *RequiredCapabilities, validate CredentialValidator) error {
	if err := t.checkLeaf(l, src, groupID, idx, now, required, validate); err != nil {
		return fmt.Errorf("validating leaf node for leaf %d: %w", idx, err)
	}
	return nil
}

func (t *ratchetTree) checkLeaf(l *LeafNode, src LeafNodeSource, groupID []byte, idx LeafIndex, now time.Time, required *RequiredCapabilities, validate CredentialValidator) error {
	if l == nil {
		return fmt.Errorf("%w: missing", ErrInvalidLeaf)
	}
	if l.Source != src {
		return fmt.Errorf("%w: source %d, want %d", ErrInvalidLeaf, l.Source, src)
	}
	if validate != nil {
		if err := validate(&l.Credential, l.SignatureKey); err != nil {
			return fmt.Errorf("%w: credential rejected: %w", ErrInvalidLeaf, err)
		}
	}
	if err := verifyLeafSignature(t.suite, l, groupID, idx); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLeaf, err)
	}
	if src == LeafSourceKeyPackage && !now.IsZero() {
		sec := now.Unix()
		if sec < 0 || uint64(sec) < l.Lifetime.NotBefore || uint64(sec) > l.Lifetime.NotAfter {
			return fmt.Errorf("%w: lifetime [%d, %d] does not cover %d", ErrInvalidLeaf, l.Lifetime.NotBefore, l.Lifetime.NotAfter, sec)
		}
	}
	if !hasU16(l.Capabilities.Versions, ProtocolMLS10) {
		return fmt.Errorf("%w: capabilities lack protocol version mls10", ErrInvalidLeaf)
	}
	if !hasU16(l.Capabilities.CipherSuites, t.suite.ID) {
		return fmt.Errorf("%w: capabilities lack the group's cipher suite %d", ErrInvalidLeaf, t.suite.ID)
	}
	if !hasU16(l.Capabilities.Credentials, l.Credential.Type) {
		return fmt.Errorf("%w: capabilities lack its own credential type %d", ErrInvalidLeaf, l.Credential.Type)
	}
	if err := leafSupportsRequired(l, required); err != nil {
		return err
	}
	for _, e := range l.Extensions {
		if !leafSupportsExtension(l, e.Type) {
			return fmt.Errorf("%w: carries extension %d not listed in its capabilities", ErrInvalidLeaf, e.Type)
		}
	}
	for j := LeafIndex(0); uint32(j) < t.numLeaves(); j++ {
		m := t.nodes[j.node()].leaf
		if m == nil || m == l {
			continue
		}
		if j == idx {
			if src != LeafSourceKeyPackage && bytes.Equal(m.EncryptionKey, l.EncryptionKey) {
				return fmt.Errorf("%w: encryption key not changed", ErrInvalidLeaf)
			}
			continue
		}
		if !hasU16(m.Capabilities.Credentials, l.Credential.Type) {
			return fmt.Errorf("%w: member %d does not support credential type %d", ErrInvalidLeaf, j, l.Credential.Type)
		}
		if !hasU16(l.Capabilities.Credentials, m.Credential.Type) {
			return fmt.Errorf("%w: does not support credential type %d of member %d", ErrInvalidLeaf, m.Credential.Type, j)
		}
		if bytes.Equal(m.EncryptionKey, l.EncryptionKey) {
			return fmt.Errorf("%w: encryption key already used by leaf %d", ErrInvalidLeaf, j)
		}
		if bytes.Equal(m.SignatureKey, l.SignatureKey) {
			return fmt.Errorf("%w: signature key already used by leaf %d", ErrInvalidLeaf, j)
		}
	}
	for i := 1; i < len(t.nodes); i += 2 {
		if p := t.nodes[i].parent; p != nil && bytes.Equal(p.EncryptionKey, l.EncryptionKey) {
			return fmt.Errorf("%w: encryption key already used by parent node %d", ErrInvalidLeaf, i)
		}
	}
	return nil
}
