package identity

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// Revocation is the root's statement that a device may no longer connect
// or be added to groups. It is appended to the transparency log.
//
// Encoding: version uint8 = 1, device_id [16], revoked_at uint64 Unix
// seconds, signature [64] over label || the fields before it.
type Revocation struct {
	DeviceID  DeviceID
	RevokedAt time.Time
	Signature []byte
}

func (r *Revocation) tbs() []byte {
	var e encoder
	e.u8(formatVersion)
	e.raw(r.DeviceID[:])
	e.u64(uint64(r.RevokedAt.Unix()))
	return e.b
}

// SignRevocation signs a revocation of id at time at.
func (k *RootKey) SignRevocation(id DeviceID, at time.Time) *Revocation {
	r := &Revocation{DeviceID: id, RevokedAt: time.Unix(max(at.Unix(), 0), 0)}
	r.Signature = k.sign(labelRevocation, r.tbs())
	return r
}

// Encode returns the canonical encoding.
func (r *Revocation) Encode() []byte { return append(r.tbs(), r.Signature...) }

// DecodeRevocation strictly decodes a revocation without verifying it.
func DecodeRevocation(b []byte) (*Revocation, error) {
	d := decoder{b: b}
	d.version("revocation")
	var r Revocation
	copy(r.DeviceID[:], d.take("device_id", DeviceIDSize))
	at := d.u64("revoked_at")
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

// Verify checks the root's signature.
func (r *Revocation) Verify(root RootPublicKey) error {
	if err := root.verify(labelRevocation, r.tbs(), r.Signature); err != nil {
		return fmt.Errorf("verifying revocation of %s: %w", r.DeviceID, err)
	}
	return nil
}
