package mls

import (
	"errors"
	"fmt"
)

// This file holds the TLS presentation-language codec of RFC 9420 (section
// 2.1.2 and RFC 8446 section 3) with the MLS variable-length integer for
// vector lengths. Decoding is strict: a length that is not minimally encoded,
// a vector longer than the bytes that remain, a boolean or optional flag that
// is neither 0 nor 1, and trailing bytes after a top-level value are all
// errors.

// Errors returned by the decoder. They are wrapped in a *DecodeError that
// names the field being read.
var (
	ErrTruncated      = errors.New("mls: truncated input")
	ErrTrailingBytes  = errors.New("mls: trailing bytes after value")
	ErrNonMinimalInt  = errors.New("mls: varint not minimally encoded")
	ErrInvalidVarint  = errors.New("mls: invalid varint prefix")
	ErrOversizeVector = errors.New("mls: vector length exceeds limit")
	ErrInvalidBool    = errors.New("mls: invalid boolean or optional flag")
	ErrInvalidValue   = errors.New("mls: invalid enumerated value")
)

// maxVarint is the largest length a varint can carry (30 bits).
const maxVarint = 1<<30 - 1

// writer appends encodings to a byte slice. It never fails: callers that
// could produce an over-long vector check sizes before writing.
type writer struct {
	b []byte
}

func (w *writer) bytes() []byte { return w.b }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = append(w.b, byte(v>>8), byte(v)) }
func (w *writer) u32(v uint32) {
	w.b = append(w.b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
func (w *writer) u64(v uint64) {
	w.u32(uint32(v >> 32))
	w.u32(uint32(v))
}

func (w *writer) boolean(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

// raw appends bytes without a length prefix (fixed-size fields).
func (w *writer) raw(b []byte) { w.b = append(w.b, b...) }

// varint appends an MLS variable-length integer (RFC 9420 section 2.1.2).
func (w *writer) varint(n uint64) {
	switch {
	case n < 1<<6:
		w.u8(uint8(n))
	case n < 1<<14:
		w.u16(uint16(n) | 0x4000)
	case n <= maxVarint:
		w.u32(uint32(n) | 0x80000000)
	default:
		panic("mls: vector too long to encode")
	}
}

// opaque appends a variable-length opaque vector: opaque data<V>.
func (w *writer) opaque(b []byte) {
	w.varint(uint64(len(b)))
	w.raw(b)
}

// vector appends a variable-length vector whose body is written by fn.
func (w *writer) vector(fn func(w *writer)) {
	var inner writer
	fn(&inner)
	w.opaque(inner.b)
}

// optional appends an optional<T>: a presence flag and, when present, the
// value written by fn.
func (w *writer) optional(present bool, fn func(w *writer)) {
	w.boolean(present)
	if present {
		fn(w)
	}
}

// DecodeError reports where decoding failed.
type DecodeError struct {
	Field string // what was being read
	Err   error  // one of the Err* sentinels above, or a semantic error
}

func (e *DecodeError) Error() string { return "mls: decoding " + e.Field + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// reader decodes from a byte slice with a sticky error: after the first
// failure every read returns zero values and err keeps the first cause.
type reader struct {
	b   []byte
	err error
	// alias makes raw and opaque return slices of b instead of copies;
	// only for a buffer the decoder owns and nothing else writes (a
	// freshly decrypted plaintext).
	alias bool
}

func newReader(b []byte) *reader { return &reader{b: b} }

// fail records the first error; later errors are dropped.
func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = &DecodeError{Field: field, Err: err}
	}
	r.b = nil
}

// failf records a semantic error with a formatted message.
func (r *reader) failf(field, format string, args ...any) {
	r.fail(field, fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...))
}

func (r *reader) empty() bool { return len(r.b) == 0 }

// done checks that the whole input was consumed and returns the first error.
func (r *reader) done(field string) error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(field, ErrTrailingBytes)
	}
	return r.err
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail(field, ErrTruncated)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	b := r.take(field, 1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16(field string) uint16 {
	b := r.take(field, 2)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

func (r *reader) u32(field string) uint32 {
	b := r.take(field, 4)
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (r *reader) u64(field string) uint64 {
	hi := r.u32(field)
	lo := r.u32(field)
	return uint64(hi)<<32 | uint64(lo)
}

func (r *reader) boolean(field string) bool {
	v := r.u8(field)
	if v > 1 {
		r.fail(field, ErrInvalidBool)
		return false
	}
	return v == 1
}

// raw reads n bytes and returns a copy.
func (r *reader) raw(field string, n int) []byte {
	b := r.take(field, n)
	if b == nil {
		return nil
	}
	if r.alias {
		return b
	}
	return append([]byte(nil), b...)
}

func (r *reader) varint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(field, ErrTruncated)
		return 0
	}
	prefix := r.b[0] >> 6
	var n uint64
	switch prefix {
	case 0:
		n = uint64(r.u8(field) & 0x3f)
	case 1:
		n = uint64(r.u16(field) & 0x3fff)
		if n < 1<<6 {
			r.fail(field, ErrNonMinimalInt)
		}
	case 2:
		n = uint64(r.u32(field) & 0x3fffffff)
		if n < 1<<14 {
			r.fail(field, ErrNonMinimalInt)
		}
	default:
		r.fail(field, ErrInvalidVarint)
	}
	return n
}

// opaque reads an opaque<V> and returns a copy of its contents.
func (r *reader) opaque(field string) []byte {
	n := r.varint(field)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(field, ErrOversizeVector)
		return nil
	}
	b := r.raw(field, int(n))
	if b == nil {
		b = []byte{}
	}
	return b
}

// vector reads a vector's length and returns a reader over its body. The
// caller loops "for !v.empty()" and the parent's sticky error is shared.
func (r *reader) vector(field string) *reader {
	n := r.varint(field)
	if r.err != nil {
		return &reader{err: r.err}
	}
	if n > uint64(len(r.b)) {
		r.fail(field, ErrOversizeVector)
		return &reader{err: r.err}
	}
	sub := &reader{b: r.b[:n:n]}
	r.b = r.b[n:]
	return sub
}

// join copies a sub-reader's error into r after the sub-reader is consumed.
func (r *reader) join(sub *reader) {
	if sub.err != nil && r.err == nil {
		r.err = sub.err
		r.b = nil
	}
}

// optional reads an optional<T> presence flag.
func (r *reader) optional(field string) bool { return r.boolean(field) }

// readVector decodes a vector<T> with item decoding each element.
func readVector[T any](r *reader, field string, item func(r *reader) T) []T {
	sub := r.vector(field)
	var out []T
	for sub.err == nil && !sub.empty() {
		v := item(sub)
		if sub.err != nil {
			break
		}
		out = append(out, v)
	}
	r.join(sub)
	if r.err != nil {
		return nil
	}
	return out
}

// writeVector encodes a vector<T>.
func writeVector[T any](w *writer, items []T, item func(w *writer, v T)) {
	w.vector(func(w *writer) {
		for _, v := range items {
			item(w, v)
		}
	})
}

// marshaler is implemented by every wire struct.
type marshaler interface {
	marshal(w *writer)
}

// encode returns the TLS encoding of v.
func encode(v marshaler) []byte {
	var w writer
	v.marshal(&w)
	return w.b
}

// decodeAll decodes a whole buffer with fn and rejects trailing bytes.
func decodeAll[T any](b []byte, field string, fn func(r *reader) T) (T, error) {
	r := newReader(b)
	v := fn(r)
	if err := r.done(field); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}
