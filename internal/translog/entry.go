package translog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Kind says what a log entry records. The payload format of each kind
// belongs to the package that makes it; translog only carries the bytes.
type Kind uint8

// Entry kinds. Zero is never valid.
const (
	KindDeviceCertificate Kind = 1 // a device certificate signed by the network root
	KindRevocation        Kind = 2 // a revocation of a device certificate
	KindEscrowPolicy      Kind = 3 // a version of the signed escrow policy
	KindDeviceApproval    Kind = 4 // an existing device's approval of a new device of the same user
	KindOnlineKey         Kind = 5 // the root's certificate of an online key (directory, escrow countersigning, admin)
	KindWebRelease        Kind = 6 // a release of the web app: the hash of its manifest
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindDeviceCertificate:
		return "device-certificate"
	case KindRevocation:
		return "revocation"
	case KindEscrowPolicy:
		return "escrow-policy"
	case KindDeviceApproval:
		return "device-approval"
	case KindOnlineKey:
		return "online-key"
	case KindWebRelease:
		return "web-release"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindDeviceCertificate && k <= KindWebRelease }

const (
	// EntryVersion is the only entry encoding version this package writes
	// and accepts.
	EntryVersion = 1
	// MaxPayloadSize bounds an entry's payload. Certificates, revocations
	// and policies are all far smaller.
	MaxPayloadSize = 64 << 10

	entryHeaderSize = 1 + 1 + 8 + 4 // version, kind, timestamp, payload length
	// MaxEntrySize is the largest valid encoded entry.
	MaxEntrySize = entryHeaderSize + MaxPayloadSize
)

// Errors returned by DecodeEntry and Entry.Encode; all match ErrBadEntry.
var (
	ErrBadEntry          = errors.New("translog: bad entry")
	ErrEntryVersion      = fmt.Errorf("%w: unsupported version", ErrBadEntry)
	ErrEntryKind         = fmt.Errorf("%w: unknown kind", ErrBadEntry)
	ErrEntryTruncated    = fmt.Errorf("%w: truncated", ErrBadEntry)
	ErrEntryTrailing     = fmt.Errorf("%w: trailing bytes", ErrBadEntry)
	ErrEntryTooLarge     = fmt.Errorf("%w: payload too large", ErrBadEntry)
	ErrEntryEmptyPayload = fmt.Errorf("%w: empty payload", ErrBadEntry)
)

// Entry is one record of the log.
//
// Encoding (version 1), all integers big-endian:
//
//	version   uint8  = 1
//	kind      uint8
//	timestamp uint64 milliseconds since the Unix epoch, set by the appender
//	length    uint32 payload length, 1..MaxPayloadSize
//	payload   [length]byte
//
// The encoding is canonical: DecodeEntry accepts exactly the bytes Encode
// produces, so an entry has one leaf hash.
type Entry struct {
	Kind      Kind
	Timestamp uint64 // milliseconds since the Unix epoch
	Payload   []byte
}

// Time returns the entry's timestamp as a time.Time.
func (e Entry) Time() time.Time { return time.UnixMilli(int64(e.Timestamp)) }

// check validates the fields that the encoding constrains.
func (e Entry) check() error {
	if !e.Kind.Valid() {
		return fmt.Errorf("%w %d", ErrEntryKind, uint8(e.Kind))
	}
	if len(e.Payload) == 0 {
		return ErrEntryEmptyPayload
	}
	if len(e.Payload) > MaxPayloadSize {
		return fmt.Errorf("%w: %d bytes", ErrEntryTooLarge, len(e.Payload))
	}
	return nil
}

// Encode returns the canonical encoding of e, or an error matching
// ErrBadEntry if e cannot be encoded.
func (e Entry) Encode() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("encoding entry: %w", err)
	}
	b := make([]byte, entryHeaderSize, entryHeaderSize+len(e.Payload))
	b[0] = EntryVersion
	b[1] = byte(e.Kind)
	binary.BigEndian.PutUint64(b[2:], e.Timestamp)
	binary.BigEndian.PutUint32(b[10:], uint32(len(e.Payload)))
	return append(b, e.Payload...), nil
}

// LeafHash returns the leaf hash of the encoded entry.
func (e Entry) LeafHash() (Hash, error) {
	b, err := e.Encode()
	if err != nil {
		return Hash{}, err
	}
	return HashLeaf(b), nil
}

// DecodeEntry strictly decodes one entry. It rejects unknown versions and
// kinds, empty or oversize payloads, truncation and trailing bytes with an
// error matching ErrBadEntry. The returned payload does not alias b.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) < entryHeaderSize {
		return Entry{}, fmt.Errorf("decoding entry: %w: %d bytes", ErrEntryTruncated, len(b))
	}
	if b[0] != EntryVersion {
		return Entry{}, fmt.Errorf("decoding entry: %w %d", ErrEntryVersion, b[0])
	}
	e := Entry{
		Kind:      Kind(b[1]),
		Timestamp: binary.BigEndian.Uint64(b[2:]),
	}
	if !e.Kind.Valid() {
		return Entry{}, fmt.Errorf("decoding entry: %w %d", ErrEntryKind, b[1])
	}
	n := binary.BigEndian.Uint32(b[10:])
	if n == 0 {
		return Entry{}, fmt.Errorf("decoding entry: %w", ErrEntryEmptyPayload)
	}
	if n > MaxPayloadSize {
		return Entry{}, fmt.Errorf("decoding entry: %w: %d bytes", ErrEntryTooLarge, n)
	}
	rest := b[entryHeaderSize:]
	if uint64(len(rest)) < uint64(n) {
		return Entry{}, fmt.Errorf("decoding entry: %w: payload needs %d bytes, have %d", ErrEntryTruncated, n, len(rest))
	}
	if uint64(len(rest)) > uint64(n) {
		return Entry{}, fmt.Errorf("decoding entry: %w: %d after payload", ErrEntryTrailing, len(rest)-int(n))
	}
	e.Payload = append([]byte(nil), rest...)
	return e, nil
}
