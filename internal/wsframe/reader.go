package wsframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gobwas/ws"
)

// ErrClosed is wrapped by every *CloseError: the peer closed the
// WebSocket.
var ErrClosed = errors.New("websocket closed by the peer")

// ErrProtocol is wrapped by every *ProtocolError.
var ErrProtocol = errors.New("websocket protocol error")

// CloseError is a close frame from the peer; the close reply has been
// sent through the control callback already.
type CloseError struct {
	// Code is the peer's status code (ws.StatusNoStatusRcvd when its
	// frame had none) and Reason the text after it.
	Code   ws.StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket closed by the peer: %d %s", e.Code, e.Reason)
}

// Unwrap makes errors.Is(err, ErrClosed) true.
func (e *CloseError) Unwrap() error { return ErrClosed }

// ProtocolError is a frame the peer may not send; the connection is to
// be closed with Code.
type ProtocolError struct {
	Code ws.StatusCode
	Msg  string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("websocket: %s (close code %d)", e.Msg, e.Code)
}

// Unwrap makes errors.Is(err, ErrProtocol) true.
func (e *ProtocolError) Unwrap() error { return ErrProtocol }

func protocolError(format string, args ...any) error {
	return &ProtocolError{Code: ws.StatusProtocolError, Msg: fmt.Sprintf(format, args...)}
}

// Reader reads the peer's frames: first Pre, then Conn. The zero value
// with Conn set reads a server's frames (unmasked); with FromClient set
// it reads a client's (masked, and unmasked here).
type Reader struct {
	// Pre is read before Conn: bytes the handshake's reader buffered
	// past the handshake, or a byte peeked from the connection.
	Pre  []byte
	Conn io.Reader
	// FromClient says the frames come from a client: each must be
	// masked. Otherwise none may be.
	FromClient bool
	hdr        [ws.MaxHeaderSize]byte
}

// Read reads Pre, then Conn.
func (r *Reader) Read(p []byte) (int, error) {
	if len(r.Pre) > 0 {
		n := copy(p, r.Pre)
		r.Pre = r.Pre[n:]
		if len(r.Pre) == 0 {
			r.Pre = nil
		}
		return n, nil
	}
	return r.Conn.Read(p)
}

// ReadMessage reads frames until a whole data message (text or binary)
// has arrived and returns its opcode and payload, in a buffer to give
// back with PutBuffer (never nil, even when empty). Control frames in
// between are answered through ctl before the read goes on: a ping with
// a pong, a close with the close reply, after which ReadMessage returns
// a *CloseError. An error from ctl ends the read. A message over max
// bytes, a mask where none belongs (or none where one does), reserved
// bits or opcodes and misplaced continuations are *ProtocolErrors.
func (r *Reader) ReadMessage(max int, ctl func(op ws.OpCode, payload []byte) error) (ws.OpCode, []byte, error) {
	var msg []byte
	var op ws.OpCode
	fail := func(err error) (ws.OpCode, []byte, error) {
		PutBuffer(msg)
		return 0, nil, err
	}
	for {
		h, err := ws.ReadHeaderBuffer(r, r.hdr[:])
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				return fail(protocolError("bad frame header: %v", err))
			}
			return fail(err)
		}
		if h.Rsv != 0 {
			return fail(protocolError("reserved bits set (no extension was negotiated)"))
		}
		if h.Masked != r.FromClient {
			if r.FromClient {
				return fail(protocolError("client frame not masked"))
			}
			return fail(protocolError("server frame masked"))
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > ws.MaxControlFramePayloadSize {
				return fail(protocolError("fragmented or oversized control frame"))
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(r, p); err != nil {
				return fail(err)
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpPing:
				err = ctl(ws.OpPong, p)
			case ws.OpPong:
			case ws.OpClose:
				ce := &CloseError{Code: ws.StatusNoStatusRcvd}
				if len(p) >= 2 {
					ce.Code = ws.StatusCode(binary.BigEndian.Uint16(p))
					ce.Reason = string(p[2:])
				}
				_ = ctl(ws.OpClose, r.closeReply(p, ce.Code))
				err = ce
			default:
				err = protocolError("reserved control opcode %d", h.OpCode)
			}
			if err != nil {
				return fail(err)
			}
			continue
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if op != 0 {
				return fail(protocolError("new message inside a fragmented one"))
			}
			op = h.OpCode
		case ws.OpContinuation:
			if op == 0 {
				return fail(protocolError("continuation without a message"))
			}
		default:
			return fail(protocolError("reserved data opcode %d", h.OpCode))
		}
		if h.Length > int64(max-len(msg)) {
			return fail(&ProtocolError{Code: ws.StatusMessageTooBig, Msg: fmt.Sprintf("message over %d bytes", max)})
		}
		off := len(msg)
		msg = growBuffer(msg, off+int(h.Length))
		if _, err := io.ReadFull(r, msg[off:]); err != nil {
			return fail(err)
		}
		if h.Masked {
			ws.Cipher(msg[off:], h.Mask, 0)
		}
		if h.Fin {
			if msg == nil {
				msg = []byte{}
			}
			return op, msg, nil
		}
	}
}

// closeReply is the payload of the answer to a close frame with payload
// p and code. A server answers with the client's code, or with a
// protocol error for a code a client may not send; a client echoes the
// server's code.
func (r *Reader) closeReply(p []byte, code ws.StatusCode) []byte {
	if !r.FromClient {
		return p[:min(len(p), 2)]
	}
	switch {
	case len(p) == 0:
		code = ws.StatusNormalClosure
	case len(p) == 1 || !ValidCloseCode(code):
		code = ws.StatusProtocolError
	}
	return CloseBody(code)
}

// ValidCloseCode says whether a peer may send code in a close frame.
func ValidCloseCode(c ws.StatusCode) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011, c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// CloseBody is the payload of a close frame with code and no reason.
func CloseBody(code ws.StatusCode) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, uint16(code))
	return b
}

// Read buffers come from two pools, for messages up to 4 KiB (a request,
// or a push of one or a few messages) and up to 64 KiB; larger ones are
// allocated.
const (
	smallBuffer = 4 << 10
	largeBuffer = 64 << 10
)

var (
	smallBuffers = sync.Pool{New: func() any { return new([smallBuffer]byte) }}
	largeBuffers = sync.Pool{New: func() any { return new([largeBuffer]byte) }}
)

// growBuffer returns b extended to n bytes, moving it to a bigger
// buffer (and b's back to its pool) if it does not fit.
func growBuffer(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	var nb []byte
	switch {
	case n <= smallBuffer:
		nb = smallBuffers.Get().(*[smallBuffer]byte)[:n]
	case n <= largeBuffer:
		nb = largeBuffers.Get().(*[largeBuffer]byte)[:n]
	default:
		nb = make([]byte, n, max(n, 2*cap(b)))
	}
	copy(nb, b)
	PutBuffer(b)
	return nb
}

// PutBuffer gives a message's buffer back to its pool if it came from
// one; the message must not be used afterwards.
func PutBuffer(b []byte) {
	switch cap(b) {
	case smallBuffer:
		smallBuffers.Put((*[smallBuffer]byte)(b[:smallBuffer]))
	case largeBuffer:
		largeBuffers.Put((*[largeBuffer]byte)(b[:largeBuffer]))
	}
}
