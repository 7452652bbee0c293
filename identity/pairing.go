package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"strings"
)

// A pairing request is long (its Code is some ninety characters), so a new
// device may instead publish it on the server under its short code: ten
// characters of Crockford's base32 (no I, L, O or U), derived from the
// request by a hash, which the user types on the approving device. The
// approving device fetches the request by that code and checks that the
// request it got is the one the code was derived from, then shows its
// Fingerprint for the user to compare, as for a Code. A server that
// returned another request would have to find one whose hash starts with
// the same 50 bits (about 2^50 hashes, within the code's ten minutes) and
// would still be caught by the fingerprint.

const (
	// ShortCodeLen is the number of characters of a short pairing code,
	// the dashes aside.
	ShortCodeLen = 10
	// MaxPairingRequestSize bounds an encoded PairingRequest.
	MaxPairingRequestSize = 1 + 1 + MaxUsernameLen + ed25519.PublicKeySize + PairingNonceSize

	labelPairingShortCode = "anom/v1 pairing short code"
	// shortCodeAlphabet is Crockford's base32: digits and capitals
	// without I, L, O and U.
	shortCodeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

// Encode returns the request's canonical encoding (what PublishPairing
// carries).
func (r *PairingRequest) Encode() []byte { return r.encode() }

// DecodePairingRequest strictly decodes an encoded request.
func DecodePairingRequest(b []byte) (*PairingRequest, error) {
	if len(b) > MaxPairingRequestSize {
		return nil, fmt.Errorf("decoding pairing request: %w: %d bytes", ErrMalformed, len(b))
	}
	d := decoder{b: b}
	d.version("pairing request")
	var r PairingRequest
	r.Username = d.str8("username")
	r.Key = d.fixed("key", ed25519.PublicKeySize)
	copy(r.Nonce[:], d.take("nonce", PairingNonceSize))
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding pairing request: %w", err)
	}
	if err := checkCanonical(r.Username); err != nil {
		return nil, fmt.Errorf("decoding pairing request: %w: %w", ErrMalformed, err)
	}
	return &r, nil
}

// ShortCode returns the request's short code, grouped as it is shown:
// "7KQ2-M9XD-4T". The nonce makes it random.
func (r *PairingRequest) ShortCode() string {
	h := sha256.Sum256(labelled(labelPairingShortCode, r.encode()))
	// The first 50 bits of the hash, five at a time.
	var v uint64
	for _, c := range h[:8] {
		v = v<<8 | uint64(c)
	}
	raw := make([]byte, ShortCodeLen)
	for i := range raw {
		raw[i] = shortCodeAlphabet[v>>(64-5*(i+1))&31]
	}
	return groupShortCode(string(raw))
}

// HasShortCode reports whether code (as ParseShortCode returns it) is the
// request's short code.
func (r *PairingRequest) HasShortCode(code string) bool { return r.ShortCode() == code }

func groupShortCode(s string) string {
	return s[:4] + "-" + s[4:8] + "-" + s[8:]
}

// ParseShortCode reads a short pairing code as the user typed it, ignoring
// case, dashes and spaces, and reading O as 0 and I or L as 1 (Crockford's
// base32). It returns the code grouped as ShortCode gives it.
func ParseShortCode(s string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		case r > 0x7f || !strings.ContainsRune(shortCodeAlphabet, r):
			return "", fmt.Errorf("parsing short pairing code: %w: %q is not one of its characters", ErrMalformed, r)
		}
		if b.Len() == ShortCodeLen {
			return "", fmt.Errorf("parsing short pairing code: %w: more than %d characters", ErrMalformed, ShortCodeLen)
		}
		b.WriteRune(r)
	}
	if b.Len() != ShortCodeLen {
		return "", fmt.Errorf("parsing short pairing code: %w: %d characters, want %d", ErrMalformed, b.Len(), ShortCodeLen)
	}
	return groupShortCode(b.String()), nil
}
