package escrow

import (
	"fmt"
	"time"

	"github.com/cloudflare/circl/group"
	"golang.org/x/crypto/cryptobyte"
)

// This file holds the strict binary encoding used by every message of the
// package. All integers are big-endian; variable-length fields carry an 8-,
// 16-, 24- or 32-bit length prefix; every top-level value starts with a format
// version byte. Encoders and decoders share the same field limits, so every
// value the encoder accepts decodes, and decoding then encoding gives back the
// same bytes. Decoders reject unknown versions, fields outside their limits,
// non-canonical group elements and scalars, the identity element, and
// trailing bytes.

// formatVersion is the version byte of every encoding in this package but
// the record's.
const formatVersion uint8 = 1

// recordVersion is the version byte of a record. Version 1 records had no
// proof π; they are refused since the cut-over to version 2
// (ErrRetiredRecord).
const (
	recordVersion        uint8 = 2
	retiredRecordVersion uint8 = 1
)

// maxTimeMS bounds encoded times (milliseconds since the Unix epoch): the end
// of year 9999 UTC. Times before the epoch are not encodable.
const maxTimeMS = 253402300799999

// encoder writes into a cryptobyte.Builder and records the first limit
// violation, naming the field.
type encoder struct {
	b   *cryptobyte.Builder
	err error
}

func newEncoder() *encoder { return &encoder{b: cryptobyte.NewBuilder(nil)} }

// newEncoderSize is newEncoder with room for n bytes.
func newEncoderSize(n int) *encoder { return &encoder{b: cryptobyte.NewBuilder(make([]byte, 0, n))} }

func (e *encoder) fail(field, format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("encoding %s: %s", field, fmt.Sprintf(format, args...))
	}
}

func (e *encoder) bytes() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	out, err := e.b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	return out, nil
}

func (e *encoder) u8(v uint8)   { e.b.AddUint8(v) }
func (e *encoder) u16(v uint16) { e.b.AddUint16(v) }
func (e *encoder) u32(v uint32) { e.b.AddUint32(v) }
func (e *encoder) u64(v uint64) { e.b.AddUint64(v) }

func (e *encoder) checkLen(field string, v []byte, lo, hi int) bool {
	if len(v) < lo || len(v) > hi {
		e.fail(field, "length %d outside [%d, %d]", len(v), lo, hi)
		return false
	}
	return true
}

// vec writes v with a length prefix of prefix bytes (1, 2, 3 or 4).
func (e *encoder) vec(field string, prefix int, v []byte, lo, hi int) {
	if !e.checkLen(field, v, lo, hi) {
		return
	}
	add := func(b *cryptobyte.Builder) { b.AddBytes(v) }
	switch prefix {
	case 1:
		e.b.AddUint8LengthPrefixed(add)
	case 2:
		e.b.AddUint16LengthPrefixed(add)
	case 3:
		e.b.AddUint24LengthPrefixed(add)
	case 4:
		e.b.AddUint32LengthPrefixed(add)
	default:
		panic("escrow: bad length prefix size")
	}
}

func (e *encoder) str(field string, prefix int, v string, lo, hi int) {
	e.vec(field, prefix, []byte(v), lo, hi)
}

func (e *encoder) fixed(field string, v []byte, n int) {
	if len(v) != n {
		e.fail(field, "length %d, want %d", len(v), n)
		return
	}
	e.b.AddBytes(v)
}

func (e *encoder) element(field string, v group.Element) {
	if v == nil || v.IsIdentity() {
		e.fail(field, "missing or identity element")
		return
	}
	e.b.AddBytes(mustMarshal(v))
}

// cachedElement writes v through its encoding cache (see encCache).
func (e *encoder) cachedElement(field string, v group.Element, c *encCache) {
	if v == nil || v.IsIdentity() {
		e.fail(field, "missing or identity element")
		return
	}
	e.b.AddBytes(c.get(v))
}

func (e *encoder) scalar(field string, v group.Scalar) {
	if v == nil {
		e.fail(field, "missing scalar")
		return
	}
	e.b.AddBytes(mustMarshal(v))
}

func (e *encoder) time(field string, t time.Time) {
	ms := t.UnixMilli()
	if t.Before(time.Unix(0, 0)) || ms > maxTimeMS {
		e.fail(field, "time %v outside the encodable range", t)
		return
	}
	e.u64(uint64(ms))
}

// count writes a list length as a uint16 after checking it against hi.
func (e *encoder) count(field string, n, lo, hi int) {
	if n < lo || n > hi {
		e.fail(field, "%d entries outside [%d, %d]", n, lo, hi)
		return
	}
	e.u16(uint16(n))
}

// decoder reads from a cryptobyte.String and records the first error, naming
// the field. After an error every read returns a zero value.
type decoder struct {
	s   cryptobyte.String
	err error
}

func newDecoder(b []byte) *decoder { return &decoder{s: cryptobyte.String(b)} }

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, args...))
	}
}

// version reads and checks the format version byte.
func (d *decoder) version(what string) {
	v := d.u8(what + " version")
	if d.err == nil && v != formatVersion {
		d.err = fmt.Errorf("%w: %s version %d", ErrUnknownVersion, what, v)
	}
}

// finish reports the first error or trailing bytes.
func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if !d.s.Empty() {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.s))
	}
	return nil
}

func (d *decoder) u8(field string) uint8 {
	var v uint8
	if d.err == nil && !d.s.ReadUint8(&v) {
		d.fail(field, "truncated")
	}
	return v
}

func (d *decoder) u16(field string) uint16 {
	var v uint16
	if d.err == nil && !d.s.ReadUint16(&v) {
		d.fail(field, "truncated")
	}
	return v
}

func (d *decoder) u32(field string) uint32 {
	var v uint32
	if d.err == nil && !d.s.ReadUint32(&v) {
		d.fail(field, "truncated")
	}
	return v
}

func (d *decoder) u64(field string) uint64 {
	var v uint64
	if d.err == nil && !d.s.ReadUint64(&v) {
		d.fail(field, "truncated")
	}
	return v
}

// vec reads a length-prefixed byte string and returns a copy of it.
func (d *decoder) vec(field string, prefix int, lo, hi int) []byte {
	if d.err != nil {
		return nil
	}
	var v cryptobyte.String
	var ok bool
	switch prefix {
	case 1:
		ok = d.s.ReadUint8LengthPrefixed(&v)
	case 2:
		ok = d.s.ReadUint16LengthPrefixed(&v)
	case 3:
		ok = d.s.ReadUint24LengthPrefixed(&v)
	case 4:
		var n uint32
		ok = d.s.ReadUint32(&n) && d.s.ReadBytes((*[]byte)(&v), int(n))
	default:
		panic("escrow: bad length prefix size")
	}
	if !ok {
		d.fail(field, "truncated")
		return nil
	}
	if len(v) < lo || len(v) > hi {
		d.fail(field, "length %d outside [%d, %d]", len(v), lo, hi)
		return nil
	}
	return append([]byte{}, v...)
}

func (d *decoder) str(field string, prefix int, lo, hi int) string {
	return string(d.vec(field, prefix, lo, hi))
}

func (d *decoder) fixed(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	var v []byte
	if !d.s.ReadBytes(&v, n) {
		d.fail(field, "truncated")
		return nil
	}
	return append([]byte{}, v...)
}

func (d *decoder) element(field string) group.Element {
	b := d.fixed(field, ElementSize)
	if d.err != nil {
		return nil
	}
	e, err := parseElement(b)
	if err != nil {
		d.err = fmt.Errorf("%s: %w", field, err)
		return nil
	}
	return e
}

func (d *decoder) scalar(field string) group.Scalar {
	b := d.fixed(field, ScalarSize)
	if d.err != nil {
		return nil
	}
	s, err := parseScalar(b)
	if err != nil {
		d.err = fmt.Errorf("%s: %w", field, err)
		return nil
	}
	return s
}

// cachedElement reads an element and remembers its encoding in c.
func (d *decoder) cachedElement(field string, c *encCache) group.Element {
	b := d.fixed(field, ElementSize)
	if d.err != nil {
		return nil
	}
	e, err := parseElement(b)
	if err != nil {
		d.err = fmt.Errorf("%s: %w", field, err)
		return nil
	}
	c.set(e, b)
	return e
}

func (d *decoder) time(field string) time.Time {
	ms := d.u64(field)
	if d.err != nil {
		return time.Time{}
	}
	if ms > maxTimeMS {
		d.fail(field, "time out of range")
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

func (d *decoder) count(field string, lo, hi int) int {
	n := int(d.u16(field))
	if d.err == nil && (n < lo || n > hi) {
		d.fail(field, "%d entries outside [%d, %d]", n, lo, hi)
		return 0
	}
	return n
}

// clampTime truncates t to what the encoding keeps (milliseconds, UTC).
func clampTime(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }
