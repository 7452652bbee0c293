package custodian

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"anom/escrow"
	"anom/internal/identity"
)

// MaxCertificates bounds the device certificates one envelope carries.
const MaxCertificates = escrow.MaxRequestRecords

// DefaultMaxRequestBytes is the largest request body a custodian reads when
// Config.MaxRequestBytes is zero, and the size the archive keeps its
// requests within (archive.OpenOptions.MaxRequestBytes). It holds a
// record of the largest plaintext (escrow.MaxPlaintext, 1 MiB) with a
// warrant and certificates to spare; a request of 1,000 text messages
// is a few hundred KiB.
const DefaultMaxRequestBytes = 4 << 20

const envelopeVersion = 1

// Envelope is what the archive posts to a custodian: the escrow request
// (signed warrant and countersigned records) and the device certificates
// that certify the senders' keys. The custodian trusts a certificate only if
// the network root signed it.
type Envelope struct {
	Request      *escrow.Request
	Certificates []*identity.DeviceCertificate
}

// MarshalBinary encodes the envelope: version, request (32-bit length),
// certificate count (16-bit), certificates (16-bit length each).
func (e *Envelope) MarshalBinary() ([]byte, error) {
	if e.Request == nil {
		return nil, fmt.Errorf("encoding envelope: %w: no request", ErrMalformed)
	}
	rb, err := e.Request.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding envelope: %w", err)
	}
	if len(e.Certificates) > MaxCertificates {
		return nil, fmt.Errorf("encoding envelope: %w: %d certificates, limit %d", ErrTooLarge, len(e.Certificates), MaxCertificates)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(rb)+16+len(e.Certificates)*200))
	b.AddUint8(envelopeVersion)
	b.AddUint32(uint32(len(rb)))
	b.AddBytes(rb)
	b.AddUint16(uint16(len(e.Certificates)))
	for _, c := range e.Certificates {
		cb := c.Encode()
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cb) })
	}
	return b.Bytes()
}

// ParseEnvelope decodes an envelope. It checks no signature.
func ParseEnvelope(data []byte) (*Envelope, error) {
	s := cryptobyte.String(data)
	var (
		v     uint8
		n     uint32
		rb    []byte
		count uint16
	)
	if !s.ReadUint8(&v) || v != envelopeVersion {
		return nil, fmt.Errorf("decoding envelope: %w: missing or unknown version", ErrMalformed)
	}
	if !s.ReadUint32(&n) || int64(n) > int64(len(s)) || !s.ReadBytes(&rb, int(n)) || !s.ReadUint16(&count) {
		return nil, fmt.Errorf("decoding envelope: %w: truncated", ErrMalformed)
	}
	if int(count) > MaxCertificates {
		return nil, fmt.Errorf("decoding envelope: %w: %d certificates, limit %d", ErrMalformed, count, MaxCertificates)
	}
	var raw [][]byte
	for i := 0; i < int(count); i++ {
		var cb cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&cb) {
			return nil, fmt.Errorf("decoding envelope: %w: certificate %d truncated", ErrMalformed, i)
		}
		raw = append(raw, cb)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("decoding envelope: %w: %d trailing bytes", ErrMalformed, len(s))
	}
	env := &Envelope{}
	for i, cb := range raw {
		c, err := identity.DecodeDeviceCertificate(cb)
		if err != nil {
			return nil, fmt.Errorf("decoding envelope: certificate %d: %w: %w", i, ErrMalformed, err)
		}
		env.Certificates = append(env.Certificates, c)
	}
	req, err := escrow.ParseRequest(rb)
	if err != nil {
		return nil, fmt.Errorf("decoding envelope: %w: %w", ErrMalformed, err)
	}
	env.Request = req
	return env, nil
}

// keyDirectory is the escrow.KeyDirectory of one request: device keys from
// the root-verified certificates the request carried, server keys from the
// custodian's configuration.
type keyDirectory struct {
	devices map[identity.DeviceID][]*identity.DeviceCertificate
	servers map[string]ed25519.PublicKey
}

// newKeyDirectory keeps the certificates whose root signature verifies and
// drops the others (a record whose sender has no valid certificate is then
// refused with escrow.ErrUnknownKey).
func newKeyDirectory(root identity.RootPublicKey, certs []*identity.DeviceCertificate, servers map[string]ed25519.PublicKey) *keyDirectory {
	k := &keyDirectory{devices: map[identity.DeviceID][]*identity.DeviceCertificate{}, servers: servers}
	for _, c := range certs {
		if c.VerifySignature(root) == nil {
			k.devices[c.DeviceID] = append(k.devices[c.DeviceID], c)
		}
	}
	return k
}

// DeviceKey returns the username and key of a certificate valid at time at.
func (k *keyDirectory) DeviceKey(deviceID []byte, at time.Time) (string, ed25519.PublicKey, error) {
	id, err := identity.DeviceIDFromBytes(deviceID)
	if err != nil {
		return "", nil, err
	}
	for _, c := range k.devices[id] {
		if !at.Before(c.NotBefore) && at.Before(c.NotAfter) {
			return c.Username, c.Key, nil
		}
	}
	return "", nil, fmt.Errorf("no root-signed certificate for device %s valid at %v", id, at.UTC())
}

// ServerKey returns a configured server key.
func (k *keyDirectory) ServerKey(serverID []byte) (ed25519.PublicKey, error) {
	key, ok := k.servers[string(serverID)]
	if !ok {
		return nil, fmt.Errorf("server %q not configured", serverID)
	}
	return key, nil
}
