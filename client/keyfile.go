package client

import (
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The key file is the only file of a device that holds key material, and
// the only one a wipe must destroy: every record and log is sealed under
// keys derived from the data key, and the data key exists on disk only
// inside it. It is
//
//	header  magic "ANK2", Argon2id time u32, memory KiB u32, lanes u8,
//	        salt (16), tries u32
//	group 0 n slots
//	group 1 n slots
//
// with n = tries, or 1 when tries is 0 (no limit). A slot is
// nonce (24) || XChaCha20-Poly1305(kek, kind || 64 bytes) (16-byte tag),
// where kek = Argon2id(PIN, salt) and the associated data is the header,
// the group and the slot's index, so no field can be edited, and no slot
// moved, without making the slot useless to the right PIN.
//
// One group is the PIN's: its slots hold the data key and the duress
// group's key. The other is the duress PIN's (slots of kind duress), or,
// without a duress PIN, slots sealed under a random key nobody has. The
// groups' order is drawn at random at every write, and both groups have the
// same form, so the file shows neither which group is the PIN's nor whether
// a duress PIN is set.
//
// Wrong-PIN counting: an attempt destroys (zeroes) slot c of both groups,
// where c is the number of zeroed slots, and writes the file before the PIN
// is even derived; it then tries the two copies it read. The right PIN
// writes a fresh file. So the count of wrong PINs is not a number that can
// be reset: it is the number of destroyed copies of the key, and an attempt
// can only use a slot nobody has tried yet. Writing the zeroes back, or
// random bytes, gives slots the right PIN cannot open; putting old slots
// back needs their old bytes, that is a copy of the file taken earlier,
// which can as well be attacked offline (see the README).

const (
	keyFileName  = "key"
	keyMagic     = "ANK2"
	keyHeaderLen = len(keyMagic) + 4 + 4 + 1 + saltSize + 4

	slotKindKey    = 1 // the data key || the duress group's kek
	slotKindDuress = 2 // the duress PIN's group: 64 random bytes
	slotPlainLen   = 1 + 2*keySize
	slotLen        = nonceSize + slotPlainLen + tagSize

	// maxTries bounds the wrong-PIN limit (and so the key file's size).
	maxTries = 100
)

// KDFParams are the Argon2id costs of deriving the PIN key. The zero value
// means DefaultKDF.
type KDFParams struct {
	// Time is the number of passes; 0 means DefaultKDF's.
	Time uint32
	// MemoryKiB is the memory cost in KiB; 0 means DefaultKDF's.
	MemoryKiB uint32
	// Threads is the number of lanes; 0 means DefaultKDF's.
	Threads uint8
}

// DefaultKDF is the Argon2id cost of a new device's PIN: 3 passes over
// 256 MiB in 4 lanes, about 0.5 s of a phone's four cores and 0.8 s of one
// core of a server (the README has the measured figures and what they
// mean for an offline guesser).
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 256 * 1024, Threads: 4}

func (p KDFParams) withDefaults() KDFParams {
	if p.Time == 0 {
		p.Time = DefaultKDF.Time
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultKDF.MemoryKiB
	}
	if p.Threads == 0 {
		p.Threads = DefaultKDF.Threads
	}
	return p
}

// Limits on KDF costs read from disk, so a tampered file cannot make the
// device allocate unbounded memory.
const (
	maxKDFTime   = 64
	maxKDFMemory = 4 * 1024 * 1024 // 4 GiB in KiB
	minKDFMemory = 8               // argon2 needs 8 KiB per lane at least
)

func (p KDFParams) valid() bool {
	return p.Time != 0 && p.Time <= maxKDFTime && p.Threads != 0 &&
		p.MemoryKiB >= minKDFMemory*uint32(p.Threads) && p.MemoryKiB <= maxKDFMemory
}

// deriveKEK is the one costly step of trying a PIN.
func deriveKEK(pin string, salt []byte, p KDFParams) []byte {
	return argon2.IDKey([]byte(pin), salt, p.Time, p.MemoryKiB, p.Threads, keySize)
}

type slot [slotLen]byte

// keyFile is a decoded key file.
type keyFile struct {
	kdf   KDFParams
	salt  [saltSize]byte
	tries uint32 // wrong PINs that wipe the device; 0 never
	// groups are the two slot groups, each perGroup() long.
	groups [2][]slot
}

func perGroup(tries uint32) int {
	if tries == 0 {
		return 1
	}
	return int(tries)
}

func keyFileLen(tries uint32) int { return keyHeaderLen + 2*perGroup(tries)*slotLen }

func (k *keyFile) header() []byte {
	b := make([]byte, 0, keyHeaderLen)
	b = append(b, keyMagic...)
	b = binary.BigEndian.AppendUint32(b, k.kdf.Time)
	b = binary.BigEndian.AppendUint32(b, k.kdf.MemoryKiB)
	b = append(b, k.kdf.Threads)
	b = append(b, k.salt[:]...)
	return binary.BigEndian.AppendUint32(b, k.tries)
}

func (k *keyFile) encode() []byte {
	b := make([]byte, 0, keyFileLen(k.tries))
	b = append(b, k.header()...)
	for _, g := range k.groups {
		for _, s := range g {
			b = append(b, s[:]...)
		}
	}
	return b
}

// decodeKeyFile parses a key file strictly.
func decodeKeyFile(b []byte) (*keyFile, error) {
	if len(b) < keyHeaderLen || string(b[:len(keyMagic)]) != keyMagic {
		return nil, fmt.Errorf("%w: key file has a bad header", ErrCorrupt)
	}
	k := &keyFile{}
	h := b[len(keyMagic):]
	k.kdf.Time = binary.BigEndian.Uint32(h)
	k.kdf.MemoryKiB = binary.BigEndian.Uint32(h[4:])
	k.kdf.Threads = h[8]
	copy(k.salt[:], h[9:])
	k.tries = binary.BigEndian.Uint32(h[9+saltSize:])
	if !k.kdf.valid() {
		return nil, fmt.Errorf("%w: KDF parameters out of range (t=%d m=%d p=%d)", ErrCorrupt, k.kdf.Time, k.kdf.MemoryKiB, k.kdf.Threads)
	}
	if k.tries > maxTries {
		return nil, fmt.Errorf("%w: key file allows %d wrong PINs, over %d", ErrCorrupt, k.tries, maxTries)
	}
	if len(b) != keyFileLen(k.tries) {
		return nil, fmt.Errorf("%w: key file is %d bytes, want %d", ErrCorrupt, len(b), keyFileLen(k.tries))
	}
	rest := b[keyHeaderLen:]
	n := perGroup(k.tries)
	for g := range k.groups {
		k.groups[g] = make([]slot, n)
		for i := range n {
			rest = rest[copy(k.groups[g][i][:], rest):]
		}
	}
	return k, nil
}

func (k *keyFile) slotAAD(group, index int) []byte {
	b := k.header()
	b = append(b, byte(group))
	return binary.BigEndian.AppendUint32(b, uint32(index))
}

// seal fills every slot of group g with plain (kind || 64 bytes) under kek.
func (k *keyFile) seal(g int, kek, plain []byte, rand io.Reader) error {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return err
	}
	k.groups[g] = make([]slot, perGroup(k.tries))
	for i := range k.groups[g] {
		s := &k.groups[g][i]
		if _, err := io.ReadFull(rand, s[:nonceSize]); err != nil {
			return fmt.Errorf("reading randomness: %w", err)
		}
		aead.Seal(s[nonceSize:nonceSize], s[:nonceSize], plain, k.slotAAD(g, i))
	}
	return nil
}

// open tries kek on slot s, found at index i of group g.
func (k *keyFile) open(g, i int, s *slot, kek []byte) (kind byte, body []byte, ok bool) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return 0, nil, false
	}
	pt, err := aead.Open(nil, s[:nonceSize], s[nonceSize:], k.slotAAD(g, i))
	if err != nil || len(pt) != slotPlainLen {
		return 0, nil, false
	}
	return pt[0], pt[1:], true
}

var zeroSlot slot

// used returns how many slots of each group were destroyed by attempts,
// and false when the slots are not in the only shape attempts leave
// (the same number of zeroed slots at the front of both groups, every
// other slot whole, at least one left): the file was edited.
func (k *keyFile) used() (int, bool) {
	c := -1
	for _, g := range k.groups {
		n := 0
		for n < len(g) && g[n] == zeroSlot {
			n++
		}
		for _, s := range g[n:] {
			if s == zeroSlot {
				return 0, false
			}
		}
		if c >= 0 && n != c {
			return 0, false
		}
		c = n
	}
	if c >= perGroup(k.tries) || (k.tries == 0 && c != 0) {
		return 0, false
	}
	return c, true
}

// keySet is what the PIN's slots hold, and what writing a fresh key file
// needs.
type keySet struct {
	kdf   KDFParams
	salt  [saltSize]byte
	tries uint32
	kek   []byte // Argon2id of the PIN
	dek   []byte // the data key
	// duressKEK is Argon2id of the duress PIN, or random bytes without one.
	duressKEK []byte
}

// build seals a fresh key file for ks, its groups in random order.
func (ks *keySet) build(rand io.Reader) (*keyFile, error) {
	k := &keyFile{kdf: ks.kdf, salt: ks.salt, tries: ks.tries}
	var coin [1]byte
	if _, err := io.ReadFull(rand, coin[:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	own := int(coin[0] & 1)
	plain := make([]byte, 0, slotPlainLen)
	plain = append(plain, slotKindKey)
	plain = append(plain, ks.dek...)
	plain = append(plain, ks.duressKEK...)
	if err := k.seal(own, ks.kek, plain, rand); err != nil {
		return nil, err
	}
	decoy := make([]byte, slotPlainLen)
	decoy[0] = slotKindDuress
	if _, err := io.ReadFull(rand, decoy[1:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	if err := k.seal(1-own, ks.duressKEK, decoy, rand); err != nil {
		return nil, err
	}
	clear(plain)
	return k, nil
}

func (ks *keySet) forget() {
	clear(ks.kek)
	clear(ks.dek)
	clear(ks.duressKEK)
}
