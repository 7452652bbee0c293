package escrow

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/cloudflare/circl/group"
)

// Field limits of the record encoding.
const (
	MaxNetworkID     = 64
	MaxGroupID       = 255
	MaxDeviceID      = 64
	MaxExporterLen   = 255
	MaxPlaintext     = 1 << 20
	aeadOverhead     = 16
	maxCiphertextLen = MaxPlaintext + aeadOverhead
)

// Metadata describes one application message. The sender and every recipient
// know all of it from the MLS layer, so they derive the same record.
type Metadata struct {
	NetworkID    []byte    // the anom network; 1..64 bytes
	GroupID      []byte    // MLS group id; 1..255 bytes
	Epoch        uint64    // MLS epoch
	SenderLeaf   uint32    // the sender's leaf index
	Generation   uint32    // the sender's ratchet generation for this message
	SenderDevice []byte    // the sender's device id; 1..64 bytes
	ContentType  uint16    // application content type
	SentAt       time.Time // time the sender claims; kept to the millisecond, UTC, from 1970 to 9999
}

func (m *Metadata) encode(e *encoder) {
	e.vec("network id", 1, m.NetworkID, 1, MaxNetworkID)
	e.vec("group id", 1, m.GroupID, 1, MaxGroupID)
	e.u64(m.Epoch)
	e.u32(m.SenderLeaf)
	e.u32(m.Generation)
	e.vec("sender device", 1, m.SenderDevice, 1, MaxDeviceID)
	e.u16(m.ContentType)
	e.time("sent at", m.SentAt)
}

func (m *Metadata) decode(d *decoder) {
	m.NetworkID = d.vec("network id", 1, 1, MaxNetworkID)
	m.GroupID = d.vec("group id", 1, 1, MaxGroupID)
	m.Epoch = d.u64("epoch")
	m.SenderLeaf = d.u32("sender leaf")
	m.Generation = d.u32("generation")
	m.SenderDevice = d.vec("sender device", 1, 1, MaxDeviceID)
	m.ContentType = d.u16("content type")
	m.SentAt = d.time("sent at")
}

// MarshalBinary encodes the metadata (without a version byte: it is always
// embedded in a versioned record, and is the record's AEAD associated data).
func (m *Metadata) MarshalBinary() ([]byte, error) {
	e := newEncoder()
	m.encode(e)
	b, err := e.bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMetadata, err)
	}
	return b, nil
}

// Record is the escrow copy of one application message:
// {version, metadata, R = r·G, AEAD_K(plaintext, aad = metadata), π}, with
// π the proof that binds R to this record (proof.go).
//
// Record format version 2 added π. Version 1 records are refused by
// ParseRecord with ErrRetiredRecord (the cut-over is in the README).
type Record struct {
	Metadata   Metadata
	R          group.Element
	Ciphertext []byte
	Proof      *RecordProof

	rEnc encCache // R's encoding, from Seal or ParseRecord
}

// MarshalBinary encodes the record. The encoding is deterministic; it is what
// the device signs and what recipients compare.
func (r *Record) MarshalBinary() ([]byte, error) {
	e := newEncoder()
	r.encode(e)
	b, err := e.bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding record: %w", err)
	}
	return b, nil
}

func (r *Record) encode(e *encoder) {
	e.u8(recordVersion)
	r.Metadata.encode(e)
	e.cachedElement("R", r.R, &r.rEnc)
	e.vec("ciphertext", 3, r.Ciphertext, aeadOverhead, maxCiphertextLen)
	r.Proof.encode(e)
}

// ParseRecord decodes a record encoded by Record.MarshalBinary. It checks
// the encoding only, not the proof (VerifyRecordProof). A record of the
// retired format version 1 gives ErrRetiredRecord.
func ParseRecord(b []byte) (*Record, error) {
	d := newDecoder(b)
	r := new(Record)
	switch v := d.u8("record version"); {
	case d.err != nil:
	case v == retiredRecordVersion:
		d.err = ErrRetiredRecord
	case v != recordVersion:
		d.err = fmt.Errorf("%w: record version %d", ErrUnknownVersion, v)
	}
	r.Metadata.decode(d)
	r.R = d.cachedElement("R", &r.rEnc)
	r.Ciphertext = d.vec("ciphertext", 3, aeadOverhead, maxCiphertextLen)
	r.Proof = new(RecordProof)
	r.Proof.decode(d)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding record: %w", err)
	}
	return r, nil
}

// recordScalar derives r = HashToScalar(len(exporter) || exporter || metadata)
// under the record domain-separation tag.
func recordScalar(exporterSecret, meta []byte) (group.Scalar, error) {
	if len(exporterSecret) < 16 || len(exporterSecret) > MaxExporterLen {
		return nil, fmt.Errorf("%w: exporter secret is %d bytes, want 16..%d",
			ErrInvalidMetadata, len(exporterSecret), MaxExporterLen)
	}
	msg := make([]byte, 0, 1+len(exporterSecret)+len(meta))
	msg = append(msg, byte(len(exporterSecret)))
	msg = append(msg, exporterSecret...)
	msg = append(msg, meta...)
	r := grp.HashToScalar(msg, []byte(dstRecordScalar))
	if r.IsZero() {
		// Probability 2^-252; refuse rather than produce R = identity.
		return nil, fmt.Errorf("%w: derived scalar is zero", ErrInvalidMetadata)
	}
	return r, nil
}

// recordAEAD derives K = HKDF-SHA256(ikm = r·P || R || metadata), from the
// encodings of r·P and R, and returns AES-256-GCM keyed with it.
func recordAEAD(rP, R, meta []byte) (cipher.AEAD, error) {
	ikm := make([]byte, 0, 2*ElementSize+len(meta))
	ikm = append(ikm, rP...)
	ikm = append(ikm, R...)
	ikm = append(ikm, meta...)
	key, err := hkdf.Key(sha256.New, ikm, nil, infoRecordKey, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving record key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("deriving record key: %w", err)
	}
	return cipher.NewGCM(block)
}

// zeroNonce is the AES-GCM nonce of every record. A fixed nonce is safe
// because every key K encrypts exactly one plaintext: K is derived from r,
// which is a hash of the MLS exporter secret and the message's metadata, and
// MLS never reuses (group, epoch, sender leaf, generation) for two messages.
// Randomness cannot be used here: recipients must re-derive the same bytes.
// A sender that broke MLS and reused a generation for two plaintexts would
// only expose its own two messages; the archive should refuse a second record
// for the same slot (see Metadata.Slot).
var zeroNonce [12]byte

// Seal builds the escrow record of one application message, sealed to the
// escrow public key P, with its proof π. It is deterministic: the same inputs
// give the same bytes, which is what lets recipients check it with Rederive.
func Seal(escrowKey group.Element, exporterSecret []byte, m Metadata, plaintext []byte) (*Record, error) {
	key, err := lookupEscrowKey(escrowKey)
	if err != nil {
		return nil, fmt.Errorf("sealing record: %w", err)
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("sealing record: plaintext is %d bytes, limit %d: %w", len(plaintext), MaxPlaintext, ErrInvalidMetadata)
	}
	m.SentAt = clampTime(m.SentAt)
	meta, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("sealing record: %w", err)
	}
	r, err := recordScalar(exporterSecret, meta)
	if err != nil {
		return nil, fmt.Errorf("sealing record: %w", err)
	}
	R := grp.NewElement().MulGen(r)
	rEnc := mustMarshal(R)
	rP := key.fixedBase().mulEncoded(r)
	aead, err := recordAEAD(rP[:], rEnc, meta)
	if err != nil {
		return nil, fmt.Errorf("sealing record: %w", err)
	}
	ct := aead.Seal(nil, zeroNonce[:], plaintext, meta)
	proof, err := proveRecord(key.enc, r, rEnc, meta, ct)
	if err != nil {
		return nil, fmt.Errorf("sealing record: %w", err)
	}
	rec := &Record{Metadata: m, R: R, Ciphertext: ct, Proof: proof}
	rec.rEnc.set(R, rEnc)
	return rec, nil
}

// Rederive is the recipient's check: it re-derives the record of the message
// it decrypted (plaintext with metadata m, under the group's exporter secret)
// and compares it with the received record bytes in constant time. A record
// that differs in any way returns a *MismatchError (errors.Is ErrFalseRecord)
// naming the first differing part.
func Rederive(escrowKey group.Element, exporterSecret []byte, m Metadata, plaintext, received []byte) error {
	want, err := Seal(escrowKey, exporterSecret, m, plaintext)
	if err != nil {
		return fmt.Errorf("re-deriving record: %w", err)
	}
	wantBytes, err := want.MarshalBinary()
	if err != nil {
		return fmt.Errorf("re-deriving record: %w", err)
	}
	if subtle.ConstantTimeCompare(wantBytes, received) == 1 {
		return nil
	}
	return diagnose(want, received)
}

// diagnose names the first part of a received record that differs from the
// re-derived one. It runs only once the records are known to differ.
func diagnose(want *Record, received []byte) error {
	got, err := ParseRecord(received)
	if err != nil {
		return fmt.Errorf("%w: %w", &MismatchError{Field: "encoding"}, err)
	}
	wm, _ := want.Metadata.MarshalBinary()
	gm, _ := got.Metadata.MarshalBinary()
	switch {
	case subtle.ConstantTimeCompare(wm, gm) != 1:
		return &MismatchError{Field: "metadata"}
	case !want.R.IsEqual(got.R):
		return &MismatchError{Field: "R"}
	case subtle.ConstantTimeCompare(want.Ciphertext, got.Ciphertext) != 1:
		return &MismatchError{Field: "ciphertext"}
	default:
		return &MismatchError{Field: "proof"}
	}
}

// Open decrypts a record given r·P (the combined partial decryptions).
func openRecord(rec *Record, rP group.Element) ([]byte, error) {
	meta, err := rec.Metadata.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("opening record: %w", err)
	}
	aead, err := recordAEAD(mustMarshal(rP), rec.rEnc.get(rec.R), meta)
	if err != nil {
		return nil, fmt.Errorf("opening record: %w", err)
	}
	pt, err := aead.Open(nil, zeroNonce[:], rec.Ciphertext, meta)
	if err != nil {
		return nil, fmt.Errorf("opening record: %w", ErrDecrypt)
	}
	return pt, nil
}

// Slot identifies the message a record belongs to: a hash of network, group,
// epoch, sender leaf and generation. MLS gives each message a unique slot, so
// the server and the archive should keep at most one record per slot.
func (m *Metadata) Slot() ([32]byte, error) {
	e := newEncoder()
	e.vec("network id", 1, m.NetworkID, 1, MaxNetworkID)
	e.vec("group id", 1, m.GroupID, 1, MaxGroupID)
	e.u64(m.Epoch)
	e.u32(m.SenderLeaf)
	e.u32(m.Generation)
	b, err := e.bytes()
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: %w", ErrInvalidMetadata, err)
	}
	return sha256.Sum256(append([]byte(ctxSlot), b...)), nil
}
