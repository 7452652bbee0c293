package wsframe

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// HeaderRoom is the room a client leaves before a payload for
// MaskFrame to put the header in.
const HeaderRoom = ws.MaxHeaderSize

// AppendFrame appends one unmasked, unfragmented frame (a server's).
func AppendFrame(buf []byte, op ws.OpCode, payload []byte) []byte {
	buf = appendHeader(buf, op, len(payload), 0)
	return append(buf, payload...)
}

// MaskFrame makes one masked, unfragmented frame (a client's) of the
// payload b[HeaderRoom:], masking it in place and putting the header in
// the room before it, and returns the frame: the end of b, to be written
// with one Write.
func MaskFrame(op ws.OpCode, b []byte) []byte {
	payload := b[HeaderRoom:]
	mask := ws.NewMask()
	var hdr [HeaderRoom]byte
	h := appendHeader(hdr[:0], op, len(payload), 0x80)
	h = append(h, mask[:]...)
	start := HeaderRoom - len(h)
	copy(b[start:], h)
	ws.Cipher(payload, mask, 0)
	return b[start:]
}

// appendHeader appends a final frame's header up to its length; maskBit
// is 0x80 when a mask follows.
func appendHeader(buf []byte, op ws.OpCode, n int, maskBit byte) []byte {
	switch {
	case n < 126:
		return append(buf, 0x80|byte(op), maskBit|byte(n))
	case n <= 0xffff:
		return append(buf, 0x80|byte(op), maskBit|126, byte(n>>8), byte(n))
	default:
		buf = append(buf, 0x80|byte(op), maskBit|127)
		return binary.BigEndian.AppendUint64(buf, uint64(n))
	}
}
