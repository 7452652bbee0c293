package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/gobwas/ws"
)

// The WebSocket layer (RFC 6455) of a session. The upgrade hijacks the TLS
// connection from net/http and keeps neither of its bufio buffers; frames
// are read straight from the TLS connection (which buffers one record),
// and written, a batch of queued frames at a time, through a pooled buffer
// that a connection holds only while it writes.

// errWSClosed ends a read when the client closed the WebSocket.
var errWSClosed = errors.New("websocket closed by the client")

// wsError is a protocol violation; the connection is closed with Code.
type wsError struct {
	Code ws.StatusCode
	Msg  string
}

func (e *wsError) Error() string { return fmt.Sprintf("websocket: %s (close code %d)", e.Msg, e.Code) }

func protocolError(format string, args ...any) error {
	return &wsError{Code: ws.StatusProtocolError, Msg: fmt.Sprintf(format, args...)}
}

// upgrade answers the WebSocket handshake and returns the hijacked
// connection with any bytes net/http had already read past the request.
func upgrade(w http.ResponseWriter, r *http.Request) (net.Conn, []byte, error) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, nil, fmt.Errorf("upgrading to websocket: %w", err)
	}
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pre = make([]byte, n)
		if _, err := io.ReadFull(rw.Reader, pre); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("upgrading to websocket: %w", err)
		}
	}
	return conn, pre, nil
}

// wsReader reads a client's frames: first the bytes net/http buffered,
// then the connection.
type wsReader struct {
	pre  []byte
	conn io.Reader
	hdr  [ws.MaxHeaderSize]byte
	// Where a fragmented message is being gathered.
	msg     []byte
	msgOp   ws.OpCode
	partial bool
}

func (r *wsReader) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		if len(r.pre) == 0 {
			r.pre = nil
		}
		return n, nil
	}
	return r.conn.Read(p)
}

// wsControl is what readMessage asks its caller to send back.
type wsControl struct {
	op      ws.OpCode // OpPong or OpClose; 0: nothing
	payload []byte
}

// readMessage reads frames until a whole data message (text or binary) has
// arrived and returns it. Control frames in between are answered through
// ctl: a ping gets a pong, a close ends the read with errWSClosed after
// asking for the close reply. A message over max bytes, an unmasked
// frame, reserved bits or opcodes, and misplaced continuations are
// protocol errors (*wsError).
func (r *wsReader) readMessage(max int, ctl func(wsControl)) (ws.OpCode, []byte, error) {
	for {
		h, err := ws.ReadHeaderBuffer(r, r.hdr[:])
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				return 0, nil, protocolError("bad frame header: %v", err)
			}
			return 0, nil, err
		}
		if h.Rsv != 0 {
			return 0, nil, protocolError("reserved bits set (no extension was negotiated)")
		}
		if !h.Masked {
			return 0, nil, protocolError("client frame not masked")
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > ws.MaxControlFramePayloadSize {
				return 0, nil, protocolError("fragmented or oversized control frame")
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(r, p); err != nil {
				return 0, nil, err
			}
			ws.Cipher(p, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				ctl(wsControl{op: ws.OpPong, payload: p})
			case ws.OpPong:
			case ws.OpClose:
				code := ws.StatusNormalClosure
				if len(p) >= 2 {
					code = ws.StatusCode(binary.BigEndian.Uint16(p))
				}
				if len(p) == 1 || (len(p) >= 2 && !validCloseCode(code)) {
					code = ws.StatusProtocolError
				}
				ctl(wsControl{op: ws.OpClose, payload: closeBody(code)})
				return 0, nil, errWSClosed
			default:
				return 0, nil, protocolError("reserved control opcode %d", h.OpCode)
			}
			continue
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if r.partial {
				return 0, nil, protocolError("new message inside a fragmented one")
			}
			r.msgOp, r.msg, r.partial = h.OpCode, nil, true
		case ws.OpContinuation:
			if !r.partial {
				return 0, nil, protocolError("continuation without a message")
			}
		default:
			return 0, nil, protocolError("reserved data opcode %d", h.OpCode)
		}
		if h.Length > int64(max-len(r.msg)) {
			return 0, nil, &wsError{Code: ws.StatusMessageTooBig, Msg: fmt.Sprintf("message over %d bytes", max)}
		}
		off := len(r.msg)
		if off == 0 && h.Fin && h.Length <= readBufSize {
			// A whole message in one frame, the usual case: the buffer
			// is pooled, and returned by putReadBuf once decoded.
			r.msg = readBufs.Get().(*[readBufSize]byte)[:h.Length]
		} else {
			r.msg = append(r.msg, make([]byte, h.Length)...)
		}
		if _, err := io.ReadFull(r, r.msg[off:]); err != nil {
			return 0, nil, err
		}
		ws.Cipher(r.msg[off:], h.Mask, 0)
		if h.Fin {
			op, msg := r.msgOp, r.msg
			r.msg, r.partial = nil, false
			if msg == nil {
				msg = []byte{}
			}
			return op, msg, nil
		}
	}
}

// validCloseCode says whether a client may send code in a close frame.
func validCloseCode(c ws.StatusCode) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011, c >= 3000 && c <= 4999:
		return true
	}
	return false
}

func closeBody(code ws.StatusCode) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, uint16(code))
	return b
}

// appendFrame appends one unmasked, unfragmented server frame.
func appendFrame(buf []byte, op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		buf = append(buf, 0x80|byte(op), byte(n))
	case n <= 0xffff:
		buf = append(buf, 0x80|byte(op), 126, byte(n>>8), byte(n))
	default:
		buf = append(buf, 0x80|byte(op), 127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	return append(buf, payload...)
}

// writeBufSize is the size of the pooled write buffers: a batch is written
// in one TLS record (and system call) per writeBufSize bytes.
const writeBufSize = 16 << 10

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize+64); return &b }}

// readBufSize is the size of the pooled read buffers: messages up to it
// in one frame are read into one.
const readBufSize = 4 << 10

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// putReadBuf returns a message's buffer to the pool if it came from there;
// the message must not be used afterwards.
func putReadBuf(b []byte) {
	if cap(b) == readBufSize {
		readBufs.Put((*[readBufSize]byte)(b[:readBufSize]))
	}
}
