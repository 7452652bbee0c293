package client

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	metaFile    = "meta"
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

// meta is the key file of the first format (ANV1): the data key wrapped
// under the PIN key, a duress tag (a stored verifier of the duress PIN) and
// an unauthenticated failed-PIN counter. Open still reads it, once, to
// move the device to the key file; see openLegacy.
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
	if !m.kdf.valid() {
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

// deriveFromPIN is the first format's derivation: the first half wraps
// the data key, the second is what the duress tag is computed from.
func deriveFromPIN(pin string, salt []byte, p KDFParams) (kek, check []byte) {
	out := argon2.IDKey([]byte(pin), salt, p.Time, p.MemoryKiB, p.Threads, 64)
	return out[:32], out[32:]
}

func duressTag(check []byte) [duressSize]byte {
	h := sha256.New()
	h.Write([]byte("anom duress pin v1"))
	h.Write(check)
	var t [duressSize]byte
	copy(t[:], h.Sum(nil))
	return t
}

func (m *meta) wrap(kek, dek []byte, rand io.Reader) error {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return err
	}
	nonce := m.wrapped[:nonceSize]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return fmt.Errorf("reading randomness: %w", err)
	}
	aead.Seal(m.wrapped[nonceSize:nonceSize], nonce, dek, m.header())
	return nil
}

func (m *meta) unwrap(kek []byte) ([]byte, bool) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, false
	}
	dek, err := aead.Open(nil, m.wrapped[:nonceSize], m.wrapped[nonceSize:], m.header())
	return dek, err == nil
}

// openLegacy opens a device of the first format with its own rules, once:
// the right PIN moves it to a key file (at o.kdf's cost, the data key
// kept, the old file shredded), and the duress PIN does what it does in
// openVault. Its duress PIN cannot be carried over (only a verifier of it
// was stored), so the moved device has none and says so (PINStatus).
func openLegacy(dir, pin string, o vaultOptions) (*vault, *WipeReport, error) {
	v := newVault(dir, o)
	raw, err := v.st.Get(metaFile)
	if err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	m, err := decodeMeta(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	if overdue(m.lastContact, m.wipeAfter, o.now()) {
		return v.wipeFor(wipedOverdue)
	}
	kek, check := deriveFromPIN(pin, m.salt[:], m.kdf)
	dek, ok := m.unwrap(kek)
	tag := duressTag(check)
	isDuress := subtle.ConstantTimeCompare(tag[:], m.duress[:]) == 1
	tries := min(m.maxFailed, maxTries)
	switch {
	case ok:
		return v.migrate(pin, dek)
	case isDuress:
		if err := v.st.Shred(metaFile); err != nil {
			return nil, nil, fmt.Errorf("opening device state: %w", err)
		}
		ks, err := newKeySet(pin, "", o.kdf, tries, o.rand)
		if err != nil {
			return nil, nil, fmt.Errorf("opening device state: %w", err)
		}
		v.weakPIN = CheckNewPIN(pin) != nil
		if err := v.initState(ks, settings{maxFailed: tries, wipeAfter: m.wipeAfter, lastContact: o.now().Unix()}); err != nil {
			v.forgetLocked()
			return nil, nil, fmt.Errorf("opening device state: %w", err)
		}
		return v, nil, nil
	}
	m.failed++
	if m.maxFailed > 0 && m.failed >= m.maxFailed {
		return v.wipeFor(wipedFailures)
	}
	if err := v.st.Put(metaFile, m.encode()); err != nil {
		return nil, nil, fmt.Errorf("opening device state: counting a wrong PIN: %w", err)
	}
	return nil, nil, fmt.Errorf("opening device state: %w", ErrWrongPIN)
}

// migrate moves an unlocked first-format device to a key file.
func (v *vault) migrate(pin string, dek []byte) (*vault, *WipeReport, error) {
	fail := func(err error) (*vault, *WipeReport, error) {
		v.forgetLocked()
		return nil, nil, fmt.Errorf("opening device state: moving to the key file: %w", err)
	}
	if err := v.setKey(dek); err != nil {
		return fail(err)
	}
	if err := v.loadIndex(); err != nil {
		return fail(err)
	}
	sb, err := v.getLocked(settingsRec)
	if err != nil {
		return fail(fmt.Errorf("reading settings: %w", err))
	}
	st, err := decodeSettings(sb)
	if err != nil {
		return fail(err)
	}
	if overdue(st.lastContact, st.wipeAfter, v.opts.now()) {
		v.forgetLocked()
		return v.wipeFor(wipedOverdue)
	}
	st.flags |= settingsUpgraded
	st.maxFailed = min(st.maxFailed, maxTries)
	ks := &keySet{kdf: v.opts.kdf.withDefaults(), tries: st.maxFailed, dek: dek}
	if _, err := io.ReadFull(v.opts.rand, ks.salt[:]); err != nil {
		return fail(fmt.Errorf("reading randomness: %w", err))
	}
	if err := ks.setDuress("", v.opts.rand); err != nil {
		return fail(err)
	}
	ks.kek = deriveKEK(pin, ks.salt[:], ks.kdf)
	v.keys = ks
	v.weakPIN = CheckNewPIN(pin) != nil
	if err := v.saveSettings(st); err != nil {
		return fail(err)
	}
	if err := v.writeKeys(); err != nil {
		return fail(err)
	}
	if err := v.st.Shred(metaFile); err != nil {
		return fail(err)
	}
	return v, nil, nil
}
