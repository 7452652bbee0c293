package client

import (
	"encoding/binary"
	"fmt"
	"time"
)

// KDFParams are the Argon2id costs of deriving the PIN key. The zero value
// means the second recommended option of RFC 9106: 3 passes over 64 MiB
// with 4 lanes.
type KDFParams struct {
	// Time is the number of passes; 0 means 3.
	Time uint32
	// MemoryKiB is the memory cost in KiB; 0 means 65536 (64 MiB).
	MemoryKiB uint32
	// Threads is the number of lanes; 0 means 4.
	Threads uint8
}

func (p KDFParams) withDefaults() KDFParams {
	if p.Time == 0 {
		p.Time = 3
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = 64 * 1024
	}
	if p.Threads == 0 {
		p.Threads = 4
	}
	return p
}

// Limits on KDF costs read from disk, so a tampered meta file cannot make
// the device allocate unbounded memory.
const (
	maxKDFTime   = 64
	maxKDFMemory = 4 * 1024 * 1024 // 4 GiB in KiB
	minKDFMemory = 8               // argon2 needs 8 KiB per lane at least
)

const (
	metaMagic   = "ANV1"
	saltSize    = 16
	nonceSize   = 24 // XChaCha20-Poly1305
	keySize     = 32
	tagSize     = 16
	wrappedSize = nonceSize + keySize + tagSize
	duressSize  = 32
	// metaHeaderSize is the authenticated prefix: magic, KDF params, salt.
	metaHeaderSize = len(metaMagic) + 4 + 4 + 1 + saltSize
	metaSize       = metaHeaderSize + wrappedSize + duressSize + 4 + 4 + 8 + 8
)

// meta is the only plaintext file of a device: what is needed to turn a
// PIN into the data key. The fields after the duress tag are hints that
// let a locked device wipe itself; their authoritative copies are in the
// encrypted settings record, so editing them can only cause a wipe.
type meta struct {
	kdf     KDFParams
	salt    [saltSize]byte
	wrapped [wrappedSize]byte // nonce || seal(kek, dek)
	// duress is SHA-256 over the duress PIN's derived check value, or
	// random bytes when no duress PIN is set.
	duress [duressSize]byte
	// failed counts wrong PINs since the last unlock.
	failed uint32
	// maxFailed wipes the device after that many wrong PINs; 0 never.
	maxFailed uint32
	// lastContact is when the device last reached the server (Unix
	// seconds); wipeAfter is how long it may go without (seconds; 0 never).
	lastContact int64
	wipeAfter   int64
}

func (m *meta) header() []byte {
	b := make([]byte, 0, metaHeaderSize)
	b = append(b, metaMagic...)
	b = binary.BigEndian.AppendUint32(b, m.kdf.Time)
	b = binary.BigEndian.AppendUint32(b, m.kdf.MemoryKiB)
	b = append(b, m.kdf.Threads)
	return append(b, m.salt[:]...)
}

func (m *meta) encode() []byte {
	b := make([]byte, 0, metaSize)
	b = append(b, m.header()...)
	b = append(b, m.wrapped[:]...)
	b = append(b, m.duress[:]...)
	b = binary.BigEndian.AppendUint32(b, m.failed)
	b = binary.BigEndian.AppendUint32(b, m.maxFailed)
	b = binary.BigEndian.AppendUint64(b, uint64(m.lastContact))
	return binary.BigEndian.AppendUint64(b, uint64(m.wipeAfter))
}

// decodeMeta parses a meta file strictly.
func decodeMeta(b []byte) (*meta, error) {
	if len(b) != metaSize {
		return nil, fmt.Errorf("%w: meta file is %d bytes, want %d", ErrCorrupt, len(b), metaSize)
	}
	if string(b[:len(metaMagic)]) != metaMagic {
		return nil, fmt.Errorf("%w: meta file has a bad magic", ErrCorrupt)
	}
	m := &meta{}
	b = b[len(metaMagic):]
	m.kdf.Time = binary.BigEndian.Uint32(b)
	m.kdf.MemoryKiB = binary.BigEndian.Uint32(b[4:])
	m.kdf.Threads = b[8]
	b = b[9:]
	if m.kdf.Time == 0 || m.kdf.Time > maxKDFTime || m.kdf.Threads == 0 ||
		m.kdf.MemoryKiB < minKDFMemory*uint32(m.kdf.Threads) || m.kdf.MemoryKiB > maxKDFMemory {
		return nil, fmt.Errorf("%w: KDF parameters out of range (t=%d m=%d p=%d)", ErrCorrupt, m.kdf.Time, m.kdf.MemoryKiB, m.kdf.Threads)
	}
	b = b[copy(m.salt[:], b):]
	b = b[copy(m.wrapped[:], b):]
	b = b[copy(m.duress[:], b):]
	m.failed = binary.BigEndian.Uint32(b)
	m.maxFailed = binary.BigEndian.Uint32(b[4:])
	m.lastContact = int64(binary.BigEndian.Uint64(b[8:]))
	m.wipeAfter = int64(binary.BigEndian.Uint64(b[16:]))
	if m.lastContact < 0 || m.wipeAfter < 0 {
		return nil, fmt.Errorf("%w: negative time in meta file", ErrCorrupt)
	}
	return m, nil
}

// overdue reports whether a device last in contact at lastContact must wipe
// itself at now.
func overdue(lastContact, wipeAfter int64, now time.Time) bool {
	if wipeAfter <= 0 {
		return false
	}
	return now.Unix()-lastContact >= wipeAfter
}
