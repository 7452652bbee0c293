package mls

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// KeyPackageBundle is a key package with the private keys behind it. The
// private keys never leave the device.
type KeyPackageBundle struct {
	KeyPackage     *KeyPackage
	InitPriv       []byte
	EncryptionPriv []byte
	SignaturePriv  SignaturePrivateKey
}

// KeyPackageOptions shape a new key package. The zero value gives a key
// package valid from an hour ago for 90 days with default capabilities.
type KeyPackageOptions struct {
	// Lifetime is how long the key package is valid; 0 means 90 days.
	Lifetime time.Duration
	// Capabilities; nil lists only the suite, version 1.0 and the basic
	// credential (the defaults of RFC 9420 are always supported).
	Capabilities *Capabilities
	// LeafExtensions and Extensions are put in the leaf node and in the
	// key package.
	LeafExtensions []Extension
	Extensions     []Extension
}

// DefaultCapabilities is what anom supports.
func DefaultCapabilities(s *CipherSuite) Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolMLS10},
		CipherSuites: []CipherSuiteID{s.ID},
		Credentials:  []CredentialType{CredentialBasic, CredentialX509},
	}
}

// NewKeyPackage makes a key package for a credential and signature key.
func NewKeyPackage(s *CipherSuite, cred Credential, sigPriv SignaturePrivateKey, opts KeyPackageOptions, rand io.Reader, now time.Time) (*KeyPackageBundle, error) {
	initPriv, initPub, err := s.GenerateKeyPair(rand)
	if err != nil {
		return nil, fmt.Errorf("making init key: %w", err)
	}
	encPriv, encPub, err := s.GenerateKeyPair(rand)
	if err != nil {
		return nil, fmt.Errorf("making encryption key: %w", err)
	}
	caps := DefaultCapabilities(s)
	if opts.Capabilities != nil {
		caps = *opts.Capabilities
	}
	life := opts.Lifetime
	if life == 0 {
		life = 90 * 24 * time.Hour
	}
	leaf := LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPriv.PublicKey(),
		Credential:    cred,
		Capabilities:  caps,
		Source:        LeafSourceKeyPackage,
		Lifetime: Lifetime{
			NotBefore: uint64(now.Add(-time.Hour).Unix()),
			NotAfter:  uint64(now.Add(life).Unix()),
		},
		Extensions: opts.LeafExtensions,
	}
	if leaf.Signature, err = s.SignWithLabel(sigPriv, "LeafNodeTBS", leaf.tbs(nil, 0)); err != nil {
		return nil, fmt.Errorf("signing leaf node: %w", err)
	}
	kp := &KeyPackage{
		Version:     ProtocolMLS10,
		CipherSuite: s.ID,
		InitKey:     initPub,
		LeafNode:    leaf,
		Extensions:  opts.Extensions,
	}
	var w writer
	kp.marshalTBS(&w)
	if kp.Signature, err = s.SignWithLabel(sigPriv, "KeyPackageTBS", w.b); err != nil {
		return nil, fmt.Errorf("signing key package: %w", err)
	}
	return &KeyPackageBundle{KeyPackage: kp, InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: sigPriv}, nil
}

// verifyKeyPackage checks a key package's own validity (RFC 9420 section
// 10.1) for a group of the given suite; the leaf checks that depend on the
// group are done by validateLeaf.
func verifyKeyPackage(s *CipherSuite, kp *KeyPackage) error {
	if kp.Version != ProtocolMLS10 {
		return fmt.Errorf("%w: version %d", ErrInvalidKeyPackage, kp.Version)
	}
	if kp.CipherSuite != s.ID {
		return fmt.Errorf("%w: cipher suite %d in a group of suite %d", ErrInvalidKeyPackage, kp.CipherSuite, s.ID)
	}
	if kp.LeafNode.Source != LeafSourceKeyPackage {
		return fmt.Errorf("%w: leaf node source %d", ErrInvalidKeyPackage, kp.LeafNode.Source)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("%w: init key equals encryption key", ErrInvalidKeyPackage)
	}
	var w writer
	kp.marshalTBS(&w)
	if err := s.VerifyWithLabel(kp.LeafNode.SignatureKey, "KeyPackageTBS", w.b, kp.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidKeyPackage, err)
	}
	return nil
}

// ValidateKeyPackage checks a key package received from the network for
// use in a group of suite s at time now, including its leaf node.
func ValidateKeyPackage(s *CipherSuite, kp *KeyPackage, now time.Time, validate CredentialValidator) error {
	if err := verifyKeyPackage(s, kp); err != nil {
		return err
	}
	l := &kp.LeafNode
	if err := s.VerifyWithLabel(l.SignatureKey, "LeafNodeTBS", l.tbs(nil, 0), l.Signature); err != nil {
		return fmt.Errorf("%w: leaf signature: %w", ErrInvalidKeyPackage, err)
	}
	if t := uint64(now.Unix()); t < l.Lifetime.NotBefore || t > l.Lifetime.NotAfter {
		return fmt.Errorf("%w: outside its lifetime", ErrInvalidKeyPackage)
	}
	if validate != nil {
		if err := validate(&l.Credential, l.SignatureKey); err != nil {
			return fmt.Errorf("%w: credential: %w", ErrInvalidKeyPackage, err)
		}
	}
	return nil
}

// KeyPackageRef returns the reference of a key package (used in Welcome).
func KeyPackageRef(s *CipherSuite, kp *KeyPackage) []byte { return s.keyPackageRef(kp) }

// Encode serializes the bundle, private keys included; keep it secret.
func (b *KeyPackageBundle) Encode() []byte {
	var w writer
	w.u16(1)
	b.KeyPackage.marshal(&w)
	w.opaque(b.InitPriv)
	w.opaque(b.EncryptionPriv)
	w.opaque(b.SignaturePriv)
	return w.b
}

// DecodeKeyPackageBundle parses a bundle made by Encode.
func DecodeKeyPackageBundle(data []byte) (*KeyPackageBundle, error) {
	return decodeAll(data, "key_package_bundle", func(r *reader) *KeyPackageBundle {
		if v := r.u16("key_package_bundle.version"); r.err == nil && v != 1 {
			r.failf("key_package_bundle.version", "unknown version %d", v)
		}
		b := &KeyPackageBundle{KeyPackage: new(KeyPackage)}
		b.KeyPackage.unmarshal(r)
		b.InitPriv = r.opaque("key_package_bundle.init_priv")
		b.EncryptionPriv = r.opaque("key_package_bundle.encryption_priv")
		b.SignaturePriv = SignaturePrivateKey(r.opaque("key_package_bundle.signature_priv"))
		return b
	})
}
