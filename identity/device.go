package identity

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// DeviceIDSize is the length of a device ID.
const DeviceIDSize = 16

// DeviceID is a device's fixed random identifier.
type DeviceID [DeviceIDSize]byte

// NewDeviceID draws a random device ID.
func NewDeviceID(rand io.Reader) (DeviceID, error) {
	var id DeviceID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return DeviceID{}, fmt.Errorf("drawing device ID: %w", err)
	}
	return id, nil
}

// String returns the ID in lowercase hex.
func (id DeviceID) String() string { return hex.EncodeToString(id[:]) }

// ParseDeviceID parses the hex form of a device ID.
func ParseDeviceID(s string) (DeviceID, error) {
	var id DeviceID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != DeviceIDSize {
		return DeviceID{}, fmt.Errorf("parsing device ID %q: %w: want %d hex bytes", s, ErrMalformed, DeviceIDSize)
	}
	copy(id[:], b)
	return id, nil
}

// DeviceIDFromBytes converts a 16-byte slice.
func DeviceIDFromBytes(b []byte) (DeviceID, error) {
	var id DeviceID
	if len(b) != DeviceIDSize {
		return id, fmt.Errorf("%w: device ID is %d bytes, want %d", ErrMalformed, len(b), DeviceIDSize)
	}
	copy(id[:], b)
	return id, nil
}

// DeviceCertificate binds a device ID and username to the device's Ed25519
// signature key (the same key the device uses as its MLS signature key)
// until the end of its subscription.
//
// Encoding, big-endian:
//
//	version    uint8 = 2 (1, signed by the root itself, is refused)
//	device_id  [16]byte
//	username   uint8 length, 3..32 bytes of [a-z0-9._-]
//	key        [32]byte Ed25519 public key
//	not_before uint64 Unix seconds
//	not_after  uint64 Unix seconds, > not_before
//	serial     uint64
//	signer     uint16 length || OnlineKeyCertificate of the directory key
//	signature  [64]byte directory key signature over label || all fields above
type DeviceCertificate struct {
	DeviceID  DeviceID
	Username  string
	Key       ed25519.PublicKey
	NotBefore time.Time
	NotAfter  time.Time
	Serial    uint64
	// Signer is the root's certificate of the directory key that signed.
	Signer    *OnlineKeyCertificate
	Signature []byte
}

// MaxDeviceCertificateSize bounds an encoded certificate.
const MaxDeviceCertificateSize = 1 + DeviceIDSize + 1 + MaxUsernameLen + ed25519.PublicKeySize + 8 + 8 + 8 + 2 + maxSignerSize + ed25519.SignatureSize

func (c *DeviceCertificate) check() error {
	if err := checkCanonical(c.Username); err != nil {
		return err
	}
	if len(c.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: key is %d bytes", ErrInvalid, len(c.Key))
	}
	if c.NotBefore.Unix() < 0 || !c.NotAfter.After(c.NotBefore) {
		return fmt.Errorf("%w: validity %v to %v", ErrInvalid, c.NotBefore, c.NotAfter)
	}
	return nil
}

func (c *DeviceCertificate) tbs() []byte {
	var e encoder
	e.u8(directoryFormatVersion)
	e.raw(c.DeviceID[:])
	e.str8(c.Username)
	e.raw(c.Key)
	e.u64(uint64(c.NotBefore.Unix()))
	e.u64(uint64(c.NotAfter.Unix()))
	e.u64(c.Serial)
	e.signer(c.Signer)
	return e.b
}

// Encode returns the certificate's canonical encoding.
func (c *DeviceCertificate) Encode() []byte {
	return append(c.tbs(), c.Signature...)
}

// DecodeDeviceCertificate strictly decodes a certificate. It does not
// verify the signature; call Verify.
func DecodeDeviceCertificate(b []byte) (*DeviceCertificate, error) {
	d := decoder{b: b}
	d.versionN("device certificate", directoryFormatVersion)
	var c DeviceCertificate
	copy(c.DeviceID[:], d.take("device_id", DeviceIDSize))
	c.Username = d.str8("username")
	c.Key = d.fixed("key", ed25519.PublicKeySize)
	nb, na := d.u64("not_before"), d.u64("not_after")
	c.Serial = d.u64("serial")
	c.Signer = d.signer()
	c.Signature = d.fixed("signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding device certificate: %w", err)
	}
	if nb > 1<<62 || na > 1<<62 {
		return nil, fmt.Errorf("decoding device certificate: %w: time out of range", ErrMalformed)
	}
	c.NotBefore, c.NotAfter = time.Unix(int64(nb), 0), time.Unix(int64(na), 0)
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("decoding device certificate: %w: %w", ErrMalformed, err)
	}
	return &c, nil
}

// VerifySignature checks the chain without the certificate's own validity
// period: the signer is the root's certificate of a directory key, valid
// at the certificate's not-before, and that key signed the certificate.
func (c *DeviceCertificate) VerifySignature(root RootPublicKey) error {
	if err := verifyChain(root, c.Signer, RoleDirectory, c.NotBefore, labelDevice, c.tbs(), c.Signature); err != nil {
		return fmt.Errorf("verifying device certificate of %s: %w", c.DeviceID, err)
	}
	return nil
}

// Verify checks the chain (VerifySignature) and that now is within the
// validity period (ErrNotYetValid, ErrExpired).
func (c *DeviceCertificate) Verify(root RootPublicKey, now time.Time) error {
	if err := c.VerifySignature(root); err != nil {
		return err
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("verifying device certificate of %s: %w: valid from %v", c.DeviceID, ErrNotYetValid, c.NotBefore.UTC())
	}
	if !now.Before(c.NotAfter) {
		return fmt.Errorf("verifying device certificate of %s: %w: at %v", c.DeviceID, ErrExpired, c.NotAfter.UTC())
	}
	return nil
}

// SignAuthResponse signs a server's authentication challenge with the
// device key: label || server name || challenge.
func SignAuthResponse(priv ed25519.PrivateKey, server string, challenge []byte) []byte {
	return ed25519.Sign(priv, labelled(labelAuthResponse, authTBS(server, challenge)))
}

// VerifyAuthResponse checks a device's answer to a challenge.
func (c *DeviceCertificate) VerifyAuthResponse(server string, challenge, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(c.Key, labelled(labelAuthResponse, authTBS(server, challenge)), sig) {
		return fmt.Errorf("verifying authentication of %s: %w", c.DeviceID, ErrBadSignature)
	}
	return nil
}

func authTBS(server string, challenge []byte) []byte {
	var e encoder
	e.bytes16([]byte(server))
	e.bytes16(challenge)
	return e.b
}
