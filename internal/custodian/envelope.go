package custodian

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"anom/escrow"
	"anom/identity"
	"anom/internal/translog"
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

const envelopeVersion = 2

// MaxLogged bounds the log entries one envelope carries: a certificate per
// record and the countersigning keys.
const MaxLogged = escrow.MaxRequestRecords + 64

// Envelope is what the archive posts to a custodian: the escrow request
// (signed warrant and countersigned records) and the transparency-log
// evidence for the keys it relies on. The custodian trusts a device
// certificate or a countersigning key only if it is a log entry included
// in TreeHead, which must be signed by a logged directory key certified by
// the root and extend the custodian's tracked head (Consistency).
type Envelope struct {
	Request *escrow.Request
	// RequestBytes, when set, is Request's encoding (escrow.EncodeRequest),
	// sent as it is in place of encoding Request again: an archive sends
	// the records as it stored them. It must encode Request; the
	// custodians answer the bytes, and an archive that sent other bytes
	// than its Request gets answers it cannot use.
	RequestBytes []byte

	received *[32]byte // ParseEnvelope: RequestHash of the bytes received
	// TreeHead is a signed tree head (version 2, with its signer entry).
	TreeHead translog.SignedTreeHead
	// Consistency proves that TreeHead extends the head the custodian
	// tracks: from its size (Size1; 0 when it tracks none) to TreeHead's.
	Consistency translog.ConsistencyProof
	// Logged are the senders' device certificates and the countersigning
	// keys' certificates as encoded log entries, with inclusion proofs in
	// TreeHead.
	Logged []LoggedEntry
}

// LoggedEntry is an encoded transparency-log entry with its inclusion proof.
type LoggedEntry struct {
	Entry []byte
	Proof translog.InclusionProof
}

// MarshalBinary encodes the envelope: version (2), request (32-bit
// length), tree head, consistency proof (16-bit length each), entry count
// (16-bit), entries (entry and inclusion proof, 16-bit length each).
func (e *Envelope) MarshalBinary() ([]byte, error) {
	if e.Request == nil {
		return nil, fmt.Errorf("encoding envelope: %w: no request", ErrMalformed)
	}
	rb := e.RequestBytes
	if rb == nil {
		var err error
		if rb, err = e.Request.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("encoding envelope: %w", err)
		}
	}
	if len(e.Logged) > MaxLogged {
		return nil, fmt.Errorf("encoding envelope: %w: %d log entries, limit %d", ErrTooLarge, len(e.Logged), MaxLogged)
	}
	hb, err := e.TreeHead.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding envelope: %w", err)
	}
	cb, err := e.Consistency.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding envelope: %w", err)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(rb)+len(hb)+len(cb)+16+len(e.Logged)*900))
	b.AddUint8(envelopeVersion)
	b.AddUint32(uint32(len(rb)))
	b.AddBytes(rb)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(hb) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cb) })
	b.AddUint16(uint16(len(e.Logged)))
	for _, l := range e.Logged {
		pb, err := l.Proof.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encoding envelope: %w", err)
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(l.Entry) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(pb) })
	}
	return b.Bytes()
}

// ParseEnvelope decodes an envelope. It checks no signature or proof.
func ParseEnvelope(data []byte) (*Envelope, error) {
	s := cryptobyte.String(data)
	var (
		v      uint8
		n      uint32
		rb     []byte
		hb, cb cryptobyte.String
		count  uint16
	)
	if !s.ReadUint8(&v) || v != envelopeVersion {
		return nil, fmt.Errorf("decoding envelope: %w: missing or unknown version (want %d)", ErrMalformed, envelopeVersion)
	}
	if !s.ReadUint32(&n) || int64(n) > int64(len(s)) || !s.ReadBytes(&rb, int(n)) ||
		!s.ReadUint16LengthPrefixed(&hb) || !s.ReadUint16LengthPrefixed(&cb) || !s.ReadUint16(&count) {
		return nil, fmt.Errorf("decoding envelope: %w: truncated", ErrMalformed)
	}
	if int(count) > MaxLogged {
		return nil, fmt.Errorf("decoding envelope: %w: %d log entries, limit %d", ErrMalformed, count, MaxLogged)
	}
	env := &Envelope{}
	if err := env.TreeHead.UnmarshalBinary(hb); err != nil {
		return nil, fmt.Errorf("decoding envelope: %w: %w", ErrMalformed, err)
	}
	if err := env.Consistency.UnmarshalBinary(cb); err != nil {
		return nil, fmt.Errorf("decoding envelope: %w: %w", ErrMalformed, err)
	}
	for i := 0; i < int(count); i++ {
		var eb, pb cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&eb) || !s.ReadUint16LengthPrefixed(&pb) {
			return nil, fmt.Errorf("decoding envelope: %w: log entry %d truncated", ErrMalformed, i)
		}
		l := LoggedEntry{Entry: append([]byte(nil), eb...)}
		if err := l.Proof.UnmarshalBinary(pb); err != nil {
			return nil, fmt.Errorf("decoding envelope: log entry %d: %w: %w", i, ErrMalformed, err)
		}
		env.Logged = append(env.Logged, l)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("decoding envelope: %w: %d trailing bytes", ErrMalformed, len(s))
	}
	req, err := escrow.ParseRequest(rb)
	if err != nil {
		return nil, fmt.Errorf("decoding envelope: %w: %w", ErrMalformed, err)
	}
	env.Request = req
	h := escrow.RequestHash(rb)
	env.received = &h
	return env, nil
}

// RequestHash is what answers to the envelope's request are bound to
// (escrow.RequestHash): of the request bytes received, for a parsed
// envelope; else of RequestBytes, if set; else of Request's encoding.
func (e *Envelope) RequestHash() ([32]byte, error) {
	switch {
	case e.received != nil:
		return *e.received, nil
	case e.RequestBytes != nil:
		return escrow.RequestHash(e.RequestBytes), nil
	case e.Request == nil:
		return [32]byte{}, fmt.Errorf("hashing request: %w: no request", ErrMalformed)
	}
	return e.Request.Hash()
}

// keyDirectory is the escrow.KeyDirectory of one request: device keys and
// countersigning keys from the logged, root-chained certificates the
// request carried (see Service.checkLog).
type keyDirectory struct {
	devices map[identity.DeviceID][]*identity.DeviceCertificate
	servers map[string]*identity.OnlineKeyCertificate // by server id (server.EscrowServerID)
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
	return "", nil, fmt.Errorf("no logged certificate for device %s valid at %v", id, at.UTC())
}

// ServerKey returns the key of a logged countersigning key certificate.
func (k *keyDirectory) ServerKey(serverID []byte) (ed25519.PublicKey, error) {
	c, ok := k.servers[string(serverID)]
	if !ok {
		return nil, fmt.Errorf("no logged countersigning key %q", serverID)
	}
	return c.Key, nil
}
