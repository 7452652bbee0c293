package identity

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// Revocation is the directory's statement that a device may no longer
// connect or be added to groups. It is appended to the transparency log.
//
// Encoding: version uint8 = 2, device_id [16], revoked_at uint64 Unix
// seconds, signer uint16 length || OnlineKeyCertificate of the directory
// key, signature [64] by that key over label || the fields before it.
type Revocation struct {
	DeviceID  DeviceID
	RevokedAt time.Time
	Signer    *OnlineKeyCertificate
	Signature []byte
}

func (r *Revocation) tbs() []byte {
	var e encoder
	e.u8(directoryFormatVersion)
	e.raw(r.DeviceID[:])
	e.u64(uint64(r.RevokedAt.Unix()))
	e.signer(r.Signer)
	return e.b
}

// Encode returns the canonical encoding.
func (r *Revocation) Encode() []byte { return append(r.tbs(), r.Signature...) }

// DecodeRevocation strictly decodes a revocation without verifying it.
func DecodeRevocation(b []byte) (*Revocation, error) {
	d := decoder{b: b}
	d.versionN("revocation", directoryFormatVersion)
	var r Revocation
	copy(r.DeviceID[:], d.take("device_id", DeviceIDSize))
	at := d.u64("revoked_at")
	r.Signer = d.signer()
	r.Signature = d.fixed("signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding revocation: %w", err)
	}
	if at > 1<<62 {
		return nil, fmt.Errorf("decoding revocation: %w: time out of range", ErrMalformed)
	}
	r.RevokedAt = time.Unix(int64(at), 0)
	return &r, nil
}

// Verify checks the chain: root → directory key certificate valid at the
// revocation time → signature.
func (r *Revocation) Verify(root RootPublicKey) error {
	if err := verifyChain(root, r.Signer, RoleDirectory, r.RevokedAt, labelRevocation, r.tbs(), r.Signature); err != nil {
		return fmt.Errorf("verifying revocation of %s: %w", r.DeviceID, err)
	}
	return nil
}
