package identity

import (
	"crypto/ed25519"
	"fmt"
	"io"
)

// MaxNameLen bounds a distributor name.
const MaxNameLen = 64

// CheckName reports whether s is a valid distributor name: 1 to 64
// characters of [a-z0-9._-].
func CheckName(s string) error {
	if len(s) < 1 || len(s) > MaxNameLen {
		return fmt.Errorf("%w: %d characters, want 1 to %d", ErrInvalidName, len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if !usernameByte(s[i]) {
			return fmt.Errorf("%w: character %q at %d is not one of [a-z0-9._-]", ErrInvalidName, s[i], i)
		}
	}
	return nil
}

// DistributorKey is a distributor's private key; it signs batches of
// activation codes.
type DistributorKey struct{ priv ed25519.PrivateKey }

// GenerateDistributorKey makes a new distributor key.
func GenerateDistributorKey(rand io.Reader) (*DistributorKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generating distributor key: %w", err)
	}
	return &DistributorKey{priv: priv}, nil
}

// DistributorKeyFromSeed rebuilds a distributor key from its seed.
func DistributorKeyFromSeed(seed []byte) (*DistributorKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("loading distributor key: %w: seed is %d bytes", ErrMalformed, len(seed))
	}
	return &DistributorKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns the secret seed.
func (k *DistributorKey) Seed() []byte { return k.priv.Seed() }

// Public returns the public key.
func (k *DistributorKey) Public() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), k.priv.Public().(ed25519.PublicKey)...)
}

// DistributorCertificate is the root's grant to a distributor: its key and
// how many activation codes it may issue in total.
//
// Encoding: version uint8 = 1, name uint8 length + bytes, key [32], quota
// uint32, serial uint64, signature [64] over label || the fields before it.
type DistributorCertificate struct {
	Name      string
	Key       ed25519.PublicKey
	Quota     uint32
	Serial    uint64
	Signature []byte
}

func (c *DistributorCertificate) check() error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	if len(c.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: key is %d bytes", ErrInvalid, len(c.Key))
	}
	return nil
}

func (c *DistributorCertificate) tbs() []byte {
	var e encoder
	e.u8(formatVersion)
	e.str8(c.Name)
	e.raw(c.Key)
	e.u32(c.Quota)
	e.u64(c.Serial)
	return e.b
}

// SignDistributorCertificate fills in the root's signature.
func (k *RootKey) SignDistributorCertificate(c *DistributorCertificate) error {
	if err := c.check(); err != nil {
		return fmt.Errorf("signing distributor certificate: %w", err)
	}
	c.Signature = k.sign(labelDistributor, c.tbs())
	return nil
}

// Encode returns the canonical encoding.
func (c *DistributorCertificate) Encode() []byte { return append(c.tbs(), c.Signature...) }

// DecodeDistributorCertificate strictly decodes without verifying.
func DecodeDistributorCertificate(b []byte) (*DistributorCertificate, error) {
	d := decoder{b: b}
	d.version("distributor certificate")
	var c DistributorCertificate
	c.Name = d.str8("name")
	c.Key = d.fixed("key", ed25519.PublicKeySize)
	c.Quota = d.u32("quota")
	c.Serial = d.u64("serial")
	c.Signature = d.fixed("signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding distributor certificate: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("decoding distributor certificate: %w: %w", ErrMalformed, err)
	}
	return &c, nil
}

// Verify checks the root's signature.
func (c *DistributorCertificate) Verify(root RootPublicKey) error {
	if err := root.verify(labelDistributor, c.tbs(), c.Signature); err != nil {
		return fmt.Errorf("verifying distributor certificate of %q: %w", c.Name, err)
	}
	return nil
}
