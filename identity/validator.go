package identity

import (
	"bytes"
	"fmt"
	"time"

	"anom/mls"
)

// Credential wraps a device certificate as an MLS Basic credential whose
// identity is the certificate's encoding.
func (c *DeviceCertificate) Credential() mls.Credential {
	return mls.Credential{Type: mls.CredentialBasic, Identity: c.Encode()}
}

// CertificateFromCredential decodes the device certificate inside an MLS
// credential. It does not verify it.
func CertificateFromCredential(cred *mls.Credential) (*DeviceCertificate, error) {
	if cred == nil || cred.Type != mls.CredentialBasic {
		return nil, fmt.Errorf("%w: not a basic credential", ErrInvalidCredential)
	}
	c, err := DecodeDeviceCertificate(cred.Identity)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCredential, err)
	}
	return c, nil
}

// ValidatorConfig configures NewCredentialValidator.
type ValidatorConfig struct {
	// Root verifies certificates. Required.
	Root RootPublicKey
	// Now is the clock for expiry checks; nil means time.Now.
	Now func() time.Time
	// Revoked reports whether a device is revoked; nil means none is.
	Revoked func(DeviceID) bool
}

// NewCredentialValidator returns an mls.CredentialValidator that accepts a
// credential only if it is a device certificate signed by the root, valid
// now, not revoked, and certifying exactly the leaf's signature key.
func NewCredentialValidator(cfg ValidatorConfig) mls.CredentialValidator {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return func(cred *mls.Credential, signatureKey []byte) error {
		c, err := CertificateFromCredential(cred)
		if err != nil {
			return err
		}
		if err := c.Verify(cfg.Root, now()); err != nil {
			return err
		}
		if !bytes.Equal(c.Key, signatureKey) {
			return fmt.Errorf("%w: certificate of %s is for another signature key", ErrInvalidCredential, c.DeviceID)
		}
		if cfg.Revoked != nil && cfg.Revoked(c.DeviceID) {
			return fmt.Errorf("checking device %s: %w", c.DeviceID, ErrRevoked)
		}
		return nil
	}
}
