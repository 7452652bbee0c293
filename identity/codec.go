package identity

import (
	"encoding/binary"
	"fmt"
)

// formatVersion is the only encoding version written and accepted.
const formatVersion = 1

// encoder appends big-endian fields.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)    { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32)  { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)  { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) raw(v []byte)  { e.b = append(e.b, v...) }
func (e *encoder) str8(s string) { e.u8(uint8(len(s))); e.b = append(e.b, s...) }
func (e *encoder) signer(c *OnlineKeyCertificate) {
	if c == nil {
		e.bytes16(nil)
		return
	}
	e.bytes16(c.Encode())
}
func (e *encoder) bytes16(v []byte) {
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(v)))
	e.b = append(e.b, v...)
}

// decoder reads big-endian fields; the first failure sticks in err and
// later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(field, "truncated: need %d bytes, have %d", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(field string) uint8 {
	v := d.take(field, 1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (d *decoder) u32(field string) uint32 {
	v := d.take(field, 4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (d *decoder) u64(field string) uint64 {
	v := d.take(field, 8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// fixed returns a copy of n bytes.
func (d *decoder) fixed(field string, n int) []byte {
	v := d.take(field, n)
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) str8(field string) string {
	n := d.u8(field + " length")
	return string(d.take(field, int(n)))
}

func (d *decoder) bytes16(field string, max int) []byte {
	v := d.take(field+" length", 2)
	if v == nil {
		return nil
	}
	n := int(binary.BigEndian.Uint16(v))
	if n > max {
		d.fail(field, "%d bytes, limit %d", n, max)
		return nil
	}
	return d.fixed(field, n)
}

// version reads and checks the format version.
func (d *decoder) version(what string) {
	v := d.u8(what + " version")
	if d.err == nil && v != formatVersion {
		d.err = fmt.Errorf("%w: %s version %d", ErrUnknownVersion, what, v)
	}
}

// finish fails on trailing bytes and returns the sticky error.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing data", "%d bytes", len(d.b))
	}
	return d.err
}
