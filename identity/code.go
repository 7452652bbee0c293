package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"strings"
	"time"
)

// An activation code is 20 random bytes, shown as 32 base32 characters in
// groups of four. The server stores only its hash (CodeHash), so a leaked
// store does not leak usable codes.
const (
	codeSize       = 20
	CodeHashSize   = sha256.Size
	MaxBatchCodes  = 1000
	MaxCodeMonths  = 120
	labelCodeHash  = "anom/v1 activation code hash"
	codeGroupChars = 4
)

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ActivationCode is a one-time code carrying a subscription length.
type ActivationCode [codeSize]byte

// NewActivationCode draws a random code.
func NewActivationCode(rand io.Reader) (ActivationCode, error) {
	var c ActivationCode
	if _, err := io.ReadFull(rand, c[:]); err != nil {
		return c, fmt.Errorf("drawing activation code: %w", err)
	}
	return c, nil
}

// String shows the code as XXXX-XXXX-... .
func (c ActivationCode) String() string {
	s := codeEncoding.EncodeToString(c[:])
	var b strings.Builder
	for i := 0; i < len(s); i += codeGroupChars {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+codeGroupChars, len(s))])
	}
	return b.String()
}

// ParseActivationCode accepts the String form, ignoring case, dashes and
// spaces.
func ParseActivationCode(s string) (ActivationCode, error) {
	var c ActivationCode
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(s))
	b, err := codeEncoding.DecodeString(clean)
	if err != nil || len(b) != codeSize {
		return c, fmt.Errorf("parsing activation code: %w", ErrInvalidCode)
	}
	copy(c[:], b)
	return c, nil
}

// Hash is what the server stores and looks the code up by.
func (c ActivationCode) Hash() [CodeHashSize]byte {
	return sha256.Sum256(labelled(labelCodeHash, c[:]))
}

// CodeBatch is a distributor's signed issue of activation codes: the hashes
// of the codes, the subscription length each carries, and when unused codes
// expire.
//
// Encoding: version uint8 = 1, distributor name uint8 length + bytes,
// months uint8 (1..120), expires uint64 Unix seconds, count uint16
// (1..1000), hashes [count][32], signature [64] by the distributor key over
// label || the fields before it.
type CodeBatch struct {
	Distributor string
	Months      uint8
	Expires     time.Time
	Hashes      [][CodeHashSize]byte
	Signature   []byte
}

func (b *CodeBatch) check() error {
	if err := CheckName(b.Distributor); err != nil {
		return err
	}
	if b.Months < 1 || b.Months > MaxCodeMonths {
		return fmt.Errorf("%w: %d months, want 1 to %d", ErrInvalid, b.Months, MaxCodeMonths)
	}
	if len(b.Hashes) < 1 || len(b.Hashes) > MaxBatchCodes {
		return fmt.Errorf("%w: %d codes, want 1 to %d", ErrInvalid, len(b.Hashes), MaxBatchCodes)
	}
	if b.Expires.Unix() < 0 {
		return fmt.Errorf("%w: expiry before 1970", ErrInvalid)
	}
	return nil
}

func (b *CodeBatch) tbs() []byte {
	var e encoder
	e.u8(formatVersion)
	e.str8(b.Distributor)
	e.u8(b.Months)
	e.u64(uint64(b.Expires.Unix()))
	e.b = append(e.b, byte(len(b.Hashes)>>8), byte(len(b.Hashes)))
	for _, h := range b.Hashes {
		e.raw(h[:])
	}
	return e.b
}

// SignCodeBatch fills in the distributor's signature.
func (k *DistributorKey) SignCodeBatch(b *CodeBatch) error {
	b.Expires = b.Expires.Truncate(time.Second)
	if err := b.check(); err != nil {
		return fmt.Errorf("signing code batch: %w", err)
	}
	b.Signature = ed25519.Sign(k.priv, labelled(labelCodeBatch, b.tbs()))
	return nil
}

// Encode returns the canonical encoding.
func (b *CodeBatch) Encode() []byte { return append(b.tbs(), b.Signature...) }

// DecodeCodeBatch strictly decodes without verifying.
func DecodeCodeBatch(data []byte) (*CodeBatch, error) {
	d := decoder{b: data}
	d.version("code batch")
	var b CodeBatch
	b.Distributor = d.str8("distributor")
	b.Months = d.u8("months")
	exp := d.u64("expires")
	hi, lo := d.u8("count"), d.u8("count")
	n := int(hi)<<8 | int(lo)
	if d.err == nil && (n < 1 || n > MaxBatchCodes) {
		d.fail("count", "%d codes, want 1 to %d", n, MaxBatchCodes)
	}
	if d.err == nil {
		b.Hashes = make([][CodeHashSize]byte, n)
		for i := range b.Hashes {
			copy(b.Hashes[i][:], d.take("hash", CodeHashSize))
		}
	}
	b.Signature = d.fixed("signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding code batch: %w", err)
	}
	if exp > 1<<62 {
		return nil, fmt.Errorf("decoding code batch: %w: time out of range", ErrMalformed)
	}
	b.Expires = time.Unix(int64(exp), 0)
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("decoding code batch: %w: %w", ErrMalformed, err)
	}
	return &b, nil
}

// Verify checks that the batch is signed by the distributor of cert, which
// must be signed by root.
func (b *CodeBatch) Verify(root RootPublicKey, cert *DistributorCertificate) error {
	if err := cert.Verify(root); err != nil {
		return fmt.Errorf("verifying code batch: %w", err)
	}
	if cert.Name != b.Distributor {
		return fmt.Errorf("verifying code batch: %w: batch of %q, certificate of %q", ErrInvalid, b.Distributor, cert.Name)
	}
	if len(b.Signature) != ed25519.SignatureSize || !ed25519.Verify(cert.Key, labelled(labelCodeBatch, b.tbs()), b.Signature) {
		return fmt.Errorf("verifying code batch of %q: %w", b.Distributor, ErrBadSignature)
	}
	return nil
}
