// Package adminapi is the anom server's admin API: what an administrator
// sends to a running server, and what it answers.
//
// A request is signed by an administrator key (identity.AdminKey) and
// carries the key's certificate (identity.OnlineKeyCertificate of
// RoleAdmin), which the server checks against the network root it pins, so
// only someone the offline root certified can act, wherever the request
// comes from. Each request has an issued-at time, refused outside a window
// around the server's clock, and a random nonce that the server keeps in
// its store for longer than that window, so the same bytes are applied at
// most once, by any server of a cluster. The server answers synchronously
// with an Answer: a code of the wire error registry (anomv1.ErrorCode) and
// a typed result.
//
// Files: request.go (the signed request, its encoding and checks),
// bodies.go (the operations and their bodies), answer.go (the answer),
// client.go (sending requests over HTTPS).
package adminapi

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"anom/identity"
)

// Path is where the server takes requests (HTTP POST, the request's
// encoding as the body) on its TLS listener.
const Path = "/v1/admin"

// label separates admin request signatures from every other signature.
const label = "anom/v1 admin request"

// NonceSize is the length of a request's nonce.
const NonceSize = 16

// Size limits of the encoding.
const (
	maxCertSize = 512
	// MaxBodySize bounds an operation's body: the largest is a code batch
	// of identity.MaxBatchCodes hashes (about 32 KiB).
	MaxBodySize = 64 << 10
	// MaxRequestSize bounds a whole request; the server reads no more.
	MaxRequestSize = 1 + 1 + 8 + NonceSize + 2 + maxCertSize + 4 + MaxBodySize + ed25519.SignatureSize
)

// DefaultWindow is how far from the server's clock a request's issued-at
// may be, either way, unless the server is configured otherwise.
const DefaultWindow = 5 * time.Minute

const version = 1

// Sentinel errors; match with errors.Is.
var (
	// ErrMalformed: the bytes are not a valid request (or body).
	ErrMalformed = errors.New("adminapi: malformed request")
	// ErrUnauthorized: the request is not signed by an administrator key
	// the network root certified and that is valid now (no or a bad
	// signature, a key of another role, another root, an expired or not
	// yet valid certificate).
	ErrUnauthorized = errors.New("adminapi: not signed by a valid admin key")
	// ErrStale: the request's issued-at is outside the server's window.
	ErrStale = errors.New("adminapi: request issued outside the accepted window")
	// ErrReplay: a request with this issued-at and nonce was seen before.
	ErrReplay = errors.New("adminapi: replayed request")
)

// Request is one signed admin request.
//
// Encoding, big-endian:
//
//	version    uint8 = 1
//	op         uint8 (Op)
//	issued_at  uint64 Unix milliseconds
//	nonce      [16]byte, random
//	cert       uint16 length, identity.OnlineKeyCertificate encoding (RoleAdmin)
//	body       uint32 length, 0..MaxBodySize bytes, as the op says
//	signature  [64]byte by the certified key over
//	           "anom/v1 admin request" || 0 || all fields above
type Request struct {
	Op        Op
	IssuedAt  time.Time // millisecond precision
	Nonce     [NonceSize]byte
	Cert      *identity.OnlineKeyCertificate
	Body      []byte
	Signature []byte
}

// NewRequest makes and signs a request of op with body, issued at now, with
// a nonce drawn from rand.
func NewRequest(op Op, body []byte, key *identity.AdminKey, cert *identity.OnlineKeyCertificate, now time.Time, rand io.Reader) (*Request, error) {
	if !op.Valid() {
		return nil, fmt.Errorf("making admin request: %w: unknown op %d", ErrMalformed, op)
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("making admin request: %w: body of %d bytes, limit %d", ErrMalformed, len(body), MaxBodySize)
	}
	if now.UnixMilli() < 0 {
		return nil, fmt.Errorf("making admin request: %w: time before 1970", ErrMalformed)
	}
	if cert == nil || len(cert.Encode()) > maxCertSize {
		return nil, fmt.Errorf("making admin request: %w: no or oversized certificate", ErrMalformed)
	}
	if !ed25519.PublicKey(cert.Key).Equal(key.Public()) {
		return nil, fmt.Errorf("making admin request: the certificate is of another key")
	}
	r := &Request{Op: op, IssuedAt: time.UnixMilli(now.UnixMilli()), Cert: cert, Body: append([]byte(nil), body...)}
	if _, err := io.ReadFull(rand, r.Nonce[:]); err != nil {
		return nil, fmt.Errorf("making admin request: drawing nonce: %w", err)
	}
	r.Signature = key.Sign(label, r.tbs())
	return r, nil
}

func (r *Request) tbs() []byte {
	cert := r.Cert.Encode()
	b := make([]byte, 0, 40+len(cert)+len(r.Body))
	b = append(b, version, byte(r.Op))
	b = binary.BigEndian.AppendUint64(b, uint64(r.IssuedAt.UnixMilli()))
	b = append(b, r.Nonce[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(cert)))
	b = append(b, cert...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Body)))
	return append(b, r.Body...)
}

// Encode returns the request's encoding.
func (r *Request) Encode() []byte { return append(r.tbs(), r.Signature...) }

// DecodeRequest strictly decodes a request: every length in range, no
// bytes left over, a well-formed certificate. It checks no signature; call
// Verify.
func DecodeRequest(b []byte) (*Request, error) {
	if len(b) > MaxRequestSize {
		return nil, fmt.Errorf("decoding admin request: %w: %d bytes, limit %d", ErrMalformed, len(b), MaxRequestSize)
	}
	d := reader{b: b}
	if v := d.u8("version"); d.err == nil && v != version {
		d.fail("version", "%d, want %d", v, version)
	}
	var r Request
	r.Op = Op(d.u8("op"))
	if d.err == nil && !r.Op.Valid() {
		d.fail("op", "unknown op %d", r.Op)
	}
	ms := d.u64("issued_at")
	if d.err == nil && ms > 1<<53 {
		d.fail("issued_at", "out of range")
	}
	copy(r.Nonce[:], d.take("nonce", NonceSize))
	cn := int(d.u16("cert length"))
	if d.err == nil && cn > maxCertSize {
		d.fail("cert", "%d bytes, limit %d", cn, maxCertSize)
	}
	certBytes := d.take("cert", cn)
	bn := d.u32("body length")
	if d.err == nil && bn > MaxBodySize {
		d.fail("body", "%d bytes, limit %d", bn, MaxBodySize)
	}
	r.Body = append([]byte(nil), d.take("body", int(bn))...)
	r.Signature = append([]byte(nil), d.take("signature", ed25519.SignatureSize)...)
	if d.err == nil && len(d.b) != 0 {
		d.fail("end", "%d bytes left over", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("decoding admin request: %w", d.err)
	}
	cert, err := identity.DecodeOnlineKeyCertificate(certBytes)
	if err != nil {
		return nil, fmt.Errorf("decoding admin request: %w: %w", ErrMalformed, err)
	}
	r.Cert = cert
	r.IssuedAt = time.UnixMilli(int64(ms))
	return &r, nil
}

// Verify checks that the request is signed by an administrator key that
// root certified and that is valid at now (ErrUnauthorized), and that it
// was issued within window of now, either way (ErrStale). The nonce is the
// caller's to check (ErrReplay), after Verify.
func (r *Request) Verify(root identity.RootPublicKey, now time.Time, window time.Duration) error {
	if err := r.Cert.Verify(root, identity.RoleAdmin, now); err != nil {
		return fmt.Errorf("verifying admin request: %w: %w", ErrUnauthorized, err)
	}
	if err := r.Cert.VerifySigned(label, r.tbs(), r.Signature); err != nil {
		return fmt.Errorf("verifying admin request of %q: %w: %w", r.Cert.Name, ErrUnauthorized, err)
	}
	if d := now.Sub(r.IssuedAt); d > window || d < -window {
		return fmt.Errorf("verifying admin request of %q: %w: issued at %s, server time %s, window ±%v",
			r.Cert.Name, ErrStale, r.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), window)
	}
	return nil
}

// reader reads big-endian fields; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (d *reader) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, args...))
	}
}

func (d *reader) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail(field, "truncated: need %d bytes, have %d", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *reader) u8(field string) uint8 {
	if v := d.take(field, 1); v != nil {
		return v[0]
	}
	return 0
}

func (d *reader) u16(field string) uint16 {
	if v := d.take(field, 2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *reader) u32(field string) uint32 {
	if v := d.take(field, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *reader) u64(field string) uint64 {
	if v := d.take(field, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
