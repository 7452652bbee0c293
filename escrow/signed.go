package escrow

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// MaxServerID bounds the server identifier in a countersignature.
const MaxServerID = 64

// maxSignedRecord bounds an encoded SignedRecord (record plus signature).
const maxRecordEncoding = 1 << 21

// SignedRecord is a record signed by the sending device's Ed25519 key.
type SignedRecord struct {
	Record    *Record
	Signature []byte // Ed25519 over ctxDeviceSig || record encoding
}

// SignRecord signs a record with the device key.
func SignRecord(rec *Record, deviceKey ed25519.PrivateKey) (*SignedRecord, error) {
	if len(deviceKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing record: device key is %d bytes", len(deviceKey))
	}
	b, err := rec.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("signing record: %w", err)
	}
	return &SignedRecord{Record: rec, Signature: ed25519.Sign(deviceKey, append([]byte(ctxDeviceSig), b...))}, nil
}

// Verify checks the device signature with the device's public key.
func (s *SignedRecord) Verify(deviceKey ed25519.PublicKey) error {
	b, err := s.Record.MarshalBinary()
	if err != nil {
		return fmt.Errorf("verifying device signature: %w", err)
	}
	if !verifyEd25519(deviceKey, append([]byte(ctxDeviceSig), b...), s.Signature) {
		return fmt.Errorf("verifying device signature: %w", ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes the signed record: version, record, signature.
func (s *SignedRecord) MarshalBinary() ([]byte, error) {
	if s.Record == nil {
		return nil, fmt.Errorf("encoding signed record: no record")
	}
	rb, err := s.Record.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding signed record: %w", err)
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.vec("record", 3, rb, 1, maxRecordEncoding)
	e.fixed("device signature", s.Signature, ed25519.SignatureSize)
	return e.bytes()
}

// ParseSignedRecord decodes a SignedRecord. It does not check the signature.
func ParseSignedRecord(b []byte) (*SignedRecord, error) {
	d := newDecoder(b)
	s, err := decodeSignedRecord(d)
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("decoding signed record: %w", err)
	}
	return s, nil
}

func decodeSignedRecord(d *decoder) (*SignedRecord, error) {
	d.version("signed record")
	rb := d.vec("record", 3, 1, maxRecordEncoding)
	sig := d.fixed("device signature", ed25519.SignatureSize)
	if d.err != nil {
		return nil, d.err
	}
	rec, err := ParseRecord(rb)
	if err != nil {
		return nil, err
	}
	return &SignedRecord{Record: rec, Signature: sig}, nil
}

// ServerRecord is a device-signed record countersigned by the server that
// accepted it, with the server's time and its sequence number.
type ServerRecord struct {
	Signed     *SignedRecord
	ServerID   []byte    // names the server key; 1..64 bytes
	ServerTime time.Time // kept to the millisecond, UTC
	Sequence   uint64
	Signature  []byte // Ed25519 over ctxServerSig || encoding without this field
}

func (s *ServerRecord) signedBytes() ([]byte, error) {
	if s.Signed == nil {
		return nil, fmt.Errorf("no signed record")
	}
	sb, err := s.Signed.MarshalBinary()
	if err != nil {
		return nil, err
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.vec("signed record", 3, sb, 1, maxRecordEncoding+128)
	e.vec("server id", 1, s.ServerID, 1, MaxServerID)
	e.time("server time", s.ServerTime)
	e.u64(s.Sequence)
	return e.bytes()
}

// Countersign adds the server's countersignature to a device-signed record.
func Countersign(signed *SignedRecord, serverID []byte, now time.Time, seq uint64, serverKey ed25519.PrivateKey) (*ServerRecord, error) {
	if len(serverKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("countersigning record: server key is %d bytes", len(serverKey))
	}
	s := &ServerRecord{Signed: signed, ServerID: append([]byte{}, serverID...), ServerTime: clampTime(now), Sequence: seq}
	b, err := s.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("countersigning record: %w", err)
	}
	s.Signature = ed25519.Sign(serverKey, append([]byte(ctxServerSig), b...))
	return s, nil
}

// Verify checks the server's countersignature (not the device signature).
func (s *ServerRecord) Verify(serverKey ed25519.PublicKey) error {
	b, err := s.signedBytes()
	if err != nil {
		return fmt.Errorf("verifying server countersignature: %w", err)
	}
	if !verifyEd25519(serverKey, append([]byte(ctxServerSig), b...), s.Signature) {
		return fmt.Errorf("verifying server countersignature: %w", ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes the countersigned record.
func (s *ServerRecord) MarshalBinary() ([]byte, error) {
	b, err := s.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("encoding server record: %w", err)
	}
	if len(s.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encoding server record: signature is %d bytes", len(s.Signature))
	}
	return append(b, s.Signature...), nil
}

// ParseServerRecord decodes a ServerRecord. It checks no signature.
func ParseServerRecord(b []byte) (*ServerRecord, error) {
	d := newDecoder(b)
	s, err := decodeServerRecord(d)
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("decoding server record: %w", err)
	}
	return s, nil
}

func decodeServerRecord(d *decoder) (*ServerRecord, error) {
	d.version("server record")
	sb := d.vec("signed record", 3, 1, maxRecordEncoding+128)
	s := &ServerRecord{}
	s.ServerID = d.vec("server id", 1, 1, MaxServerID)
	s.ServerTime = d.time("server time")
	s.Sequence = d.u64("sequence")
	s.Signature = d.fixed("server signature", ed25519.SignatureSize)
	if d.err != nil {
		return nil, d.err
	}
	signed, err := ParseSignedRecord(sb)
	if err != nil {
		return nil, err
	}
	s.Signed = signed
	return s, nil
}

// verifyEd25519 checks an Ed25519 signature, refusing malformed keys.
func verifyEd25519(pub ed25519.PublicKey, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig)
}
