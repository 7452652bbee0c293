package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// RootKey is the network root's private key. It signs device, distributor
// certificates, revocations, wipe commands and admin device approvals.
type RootKey struct{ priv ed25519.PrivateKey }

// RootPublicKey is the network root's public key, pinned by every client.
type RootPublicKey []byte

// GenerateRootKey makes a new root key from rand.
func GenerateRootKey(rand io.Reader) (*RootKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generating root key: %w", err)
	}
	return &RootKey{priv: priv}, nil
}

// RootKeyFromSeed rebuilds a root key from its 32-byte seed.
func RootKeyFromSeed(seed []byte) (*RootKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("loading root key: %w: seed is %d bytes", ErrMalformed, len(seed))
	}
	return &RootKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns the 32-byte seed from which the key can be rebuilt. It is
// the secret to store.
func (k *RootKey) Seed() []byte { return k.priv.Seed() }

// Public returns the root public key.
func (k *RootKey) Public() RootPublicKey {
	return RootPublicKey(append([]byte(nil), k.priv.Public().(ed25519.PublicKey)...))
}

// Signer returns the key as an ed25519.PrivateKey (a crypto.Signer), for
// signing transparency-log tree heads.
func (k *RootKey) Signer() ed25519.PrivateKey { return k.priv }

func (k *RootKey) sign(label string, tbs []byte) []byte {
	return ed25519.Sign(k.priv, labelled(label, tbs))
}

// Fingerprint is the SHA-256 of the public key, in hex: what users compare
// when they pin the network.
func (p RootPublicKey) Fingerprint() string {
	h := sha256.Sum256(p)
	return hex.EncodeToString(h[:])
}

func (p RootPublicKey) verify(label string, tbs, sig []byte) error {
	if len(p) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: root public key is %d bytes", ErrBadSignature, len(p))
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(ed25519.PublicKey(p), labelled(label, tbs), sig) {
		return ErrBadSignature
	}
	return nil
}

// labelled prefixes tbs with the domain-separation label and a zero byte.
func labelled(label string, tbs []byte) []byte {
	b := make([]byte, 0, len(label)+1+len(tbs))
	b = append(b, label...)
	b = append(b, 0)
	return append(b, tbs...)
}

// Domain-separation labels of every signature made in this package.
const (
	labelDevice       = "anom/v1 device certificate"
	labelRevocation   = "anom/v1 revocation"
	labelWipe         = "anom/v1 wipe command"
	labelWipeConfirm  = "anom/v1 wipe confirmation"
	labelDistributor  = "anom/v1 distributor certificate"
	labelCodeBatch    = "anom/v1 activation code batch"
	labelAuthResponse = "anom/v1 device authentication"
	labelApproval     = "anom/v1 device approval"
	labelPairing      = "anom/v1 pairing fingerprint"
	labelOnlineKey    = "anom/v1 online key certificate"
)
