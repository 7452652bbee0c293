package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"
)

// Online keys. The network root key stays offline: it only certifies, with
// a validity period, the keys the running services hold, one role each:
//
//	RoleDirectory    the server's directory key: device certificates,
//	                 revocations, transparency-log tree heads
//	RoleCountersign  the server's escrow countersigning key
//	RoleAdmin        an administrator's key: signs admin API requests
//
// Each certificate is appended to the transparency log. Rotating an online
// key (routinely or after a compromise) needs only the root: it certifies
// the new key with the next serial. What the old key signed while its
// certificate was valid stays valid; verifiers that track tree heads refuse
// a head signed under a lower directory-key serial than one they accepted
// (VerifyTreeHead, signer.go), so a retired key signs nothing they follow.

// KeyRole is what an online key may sign.
type KeyRole uint8

// The roles. Zero is not a role.
const (
	RoleDirectory   KeyRole = 1
	RoleCountersign KeyRole = 2
	RoleAdmin       KeyRole = 3
)

// String names the role.
func (r KeyRole) String() string {
	switch r {
	case RoleDirectory:
		return "directory"
	case RoleCountersign:
		return "escrow-countersign"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Valid reports whether r is a known role.
func (r KeyRole) Valid() bool { return r >= RoleDirectory && r <= RoleAdmin }

// ErrWrongRole: an online key certificate of another role than the one asked
// for (a directory key presented as an admin key, say).
var ErrWrongRole = errors.New("identity: online key of the wrong role")

// OnlineKeyCertificate is the root's certificate of one online key.
//
// Encoding, big-endian:
//
//	version    uint8 = 1
//	role       uint8
//	name       uint8 length, 1..64 bytes of [a-z0-9._-]
//	key        [32]byte Ed25519 public key
//	not_before uint64 Unix seconds
//	not_after  uint64 Unix seconds, > not_before
//	serial     uint64
//	signature  [64]byte root signature over label || all fields above
type OnlineKeyCertificate struct {
	Role      KeyRole
	Name      string // who holds it: "server", an administrator's name
	Key       ed25519.PublicKey
	NotBefore time.Time
	NotAfter  time.Time
	Serial    uint64
	Signature []byte
}

// MaxOnlineKeyNameLen bounds OnlineKeyCertificate.Name.
const MaxOnlineKeyNameLen = 64

func (c *OnlineKeyCertificate) check() error {
	if !c.Role.Valid() {
		return fmt.Errorf("%w: %v", ErrInvalid, c.Role)
	}
	if len(c.Name) < 1 || len(c.Name) > MaxOnlineKeyNameLen {
		return fmt.Errorf("%w: online key name is %d bytes, want 1..%d", ErrInvalidName, len(c.Name), MaxOnlineKeyNameLen)
	}
	for i := 0; i < len(c.Name); i++ {
		ch := c.Name[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return fmt.Errorf("%w: online key name %q: only a-z, 0-9, '.', '_', '-'", ErrInvalidName, c.Name)
		}
	}
	if len(c.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: key is %d bytes", ErrInvalid, len(c.Key))
	}
	if c.NotBefore.Unix() < 0 || !c.NotAfter.After(c.NotBefore) {
		return fmt.Errorf("%w: validity %v to %v", ErrInvalid, c.NotBefore, c.NotAfter)
	}
	return nil
}

func (c *OnlineKeyCertificate) tbs() []byte {
	var e encoder
	e.u8(formatVersion)
	e.u8(uint8(c.Role))
	e.str8(c.Name)
	e.raw(c.Key)
	e.u64(uint64(c.NotBefore.Unix()))
	e.u64(uint64(c.NotAfter.Unix()))
	e.u64(c.Serial)
	return e.b
}

// SignOnlineKeyCertificate fills in the root's signature. Times are
// truncated to whole seconds.
func (k *RootKey) SignOnlineKeyCertificate(c *OnlineKeyCertificate) error {
	c.NotBefore = c.NotBefore.Truncate(time.Second)
	c.NotAfter = c.NotAfter.Truncate(time.Second)
	if err := c.check(); err != nil {
		return fmt.Errorf("signing online key certificate: %w", err)
	}
	c.Signature = k.sign(labelOnlineKey, c.tbs())
	return nil
}

// Encode returns the certificate's canonical encoding.
func (c *OnlineKeyCertificate) Encode() []byte { return append(c.tbs(), c.Signature...) }

// DecodeOnlineKeyCertificate strictly decodes a certificate. It does not
// verify it; call Verify.
func DecodeOnlineKeyCertificate(b []byte) (*OnlineKeyCertificate, error) {
	d := decoder{b: b}
	d.version("online key certificate")
	var c OnlineKeyCertificate
	c.Role = KeyRole(d.u8("role"))
	c.Name = d.str8("name")
	c.Key = d.fixed("key", ed25519.PublicKeySize)
	nb, na := d.u64("not_before"), d.u64("not_after")
	c.Serial = d.u64("serial")
	c.Signature = d.fixed("signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding online key certificate: %w", err)
	}
	if nb > 1<<62 || na > 1<<62 {
		return nil, fmt.Errorf("decoding online key certificate: %w: time out of range", ErrMalformed)
	}
	c.NotBefore, c.NotAfter = time.Unix(int64(nb), 0), time.Unix(int64(na), 0)
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("decoding online key certificate: %w: %w", ErrMalformed, err)
	}
	return &c, nil
}

// Verify checks the root's signature, that the certificate is of role, and
// that at lies inside its validity period.
func (c *OnlineKeyCertificate) Verify(root RootPublicKey, role KeyRole, at time.Time) error {
	return c.verify(root, role, at, true)
}

// verify is Verify; withSignature false skips the root signature (checked
// before, see verifyOnlineCached).
func (c *OnlineKeyCertificate) verify(root RootPublicKey, role KeyRole, at time.Time, withSignature bool) error {
	if c.Role != role {
		return fmt.Errorf("verifying online key certificate %q: %w: it is a %v key, want %v", c.Name, ErrWrongRole, c.Role, role)
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("verifying online key certificate %q: %w", c.Name, err)
	}
	if withSignature {
		if err := root.verify(labelOnlineKey, c.tbs(), c.Signature); err != nil {
			return fmt.Errorf("verifying online key certificate %q: %w", c.Name, err)
		}
	}
	if at.Before(c.NotBefore) {
		return fmt.Errorf("verifying %v key certificate %q at %v: %w", c.Role, c.Name, at.UTC(), ErrNotYetValid)
	}
	if !at.Before(c.NotAfter) {
		return fmt.Errorf("verifying %v key certificate %q at %v: %w", c.Role, c.Name, at.UTC(), ErrExpired)
	}
	return nil
}

// VerifySigned checks a signature that the certified key made over tbs
// under label. It does not verify the certificate itself; call Verify.
func (c *OnlineKeyCertificate) VerifySigned(label string, tbs, sig []byte) error {
	return RootPublicKey(c.Key).verify(label, tbs, sig)
}

// onlineKey is the private half of an online key; each role has its own
// type around it so that one key cannot be passed where another is meant.
type onlineKey struct{ priv ed25519.PrivateKey }

func generateOnlineKey(rand io.Reader) (onlineKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return onlineKey{}, fmt.Errorf("generating online key: %w", err)
	}
	return onlineKey{priv: priv}, nil
}

func onlineKeyFromSeed(seed []byte) (onlineKey, error) {
	if len(seed) != ed25519.SeedSize {
		return onlineKey{}, fmt.Errorf("loading online key: %w: seed is %d bytes", ErrMalformed, len(seed))
	}
	return onlineKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns the 32-byte seed from which the key can be rebuilt.
func (k onlineKey) Seed() []byte { return k.priv.Seed() }

// Public returns the public key, for its certificate.
func (k onlineKey) Public() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), k.priv.Public().(ed25519.PublicKey)...)
}

// Sign signs label || 0 || tbs, the labelled form every signature of this
// package uses.
func (k onlineKey) Sign(label string, tbs []byte) []byte {
	return ed25519.Sign(k.priv, labelled(label, tbs))
}

// Signer returns the key as an ed25519.PrivateKey (a crypto.Signer), for
// callers that sign their own formats (tree heads, escrow countersignatures).
func (k onlineKey) Signer() ed25519.PrivateKey { return k.priv }

// DirectoryKey is the server's directory key (RoleDirectory).
type DirectoryKey struct{ onlineKey }

// CountersignKey is the server's escrow countersigning key (RoleCountersign).
type CountersignKey struct{ onlineKey }

// AdminKey is an administrator's key (RoleAdmin).
type AdminKey struct{ onlineKey }

// GenerateDirectoryKey makes a new directory key from rand.
func GenerateDirectoryKey(rand io.Reader) (*DirectoryKey, error) {
	k, err := generateOnlineKey(rand)
	return &DirectoryKey{k}, err
}

// DirectoryKeyFromSeed rebuilds a directory key from its seed.
func DirectoryKeyFromSeed(seed []byte) (*DirectoryKey, error) {
	k, err := onlineKeyFromSeed(seed)
	return &DirectoryKey{k}, err
}

// GenerateCountersignKey makes a new escrow countersigning key from rand.
func GenerateCountersignKey(rand io.Reader) (*CountersignKey, error) {
	k, err := generateOnlineKey(rand)
	return &CountersignKey{k}, err
}

// CountersignKeyFromSeed rebuilds a countersigning key from its seed.
func CountersignKeyFromSeed(seed []byte) (*CountersignKey, error) {
	k, err := onlineKeyFromSeed(seed)
	return &CountersignKey{k}, err
}

// GenerateAdminKey makes a new administrator key from rand.
func GenerateAdminKey(rand io.Reader) (*AdminKey, error) {
	k, err := generateOnlineKey(rand)
	return &AdminKey{k}, err
}

// AdminKeyFromSeed rebuilds an administrator key from its seed.
func AdminKeyFromSeed(seed []byte) (*AdminKey, error) {
	k, err := onlineKeyFromSeed(seed)
	return &AdminKey{k}, err
}
