package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// The client side of RFC 6455 framing, over github.com/gobwas/ws's
// header codec and masking. Frames are read straight from the TLS
// connection (which buffers one record) into pooled buffers that a
// connection holds only while it handles a message; a frame is written,
// header and masked payload together, with one Write (so one TLS record
// for a message up to 16 KiB, as a buffered writer would make).

// CloseError is a close frame from the server.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket closed by the server: %d %s", e.Code, e.Reason)
}

// errProtocol is wrapped by errors about frames the server may not send.
var errProtocol = errors.New("websocket protocol error")

// wsReader reads the server's frames: first the bytes the handshake's
// reader had buffered, then the connection.
type wsReader struct {
	pre  []byte
	conn io.Reader
	hdr  [ws.MaxHeaderSize]byte
	ctl  [ws.MaxControlFramePayloadSize]byte
}

func (r *wsReader) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.conn.Read(p)
}

// readMessage reads frames until a whole data message has arrived and
// returns it, in a buffer to give back with putReadBuf. A ping is
// answered with a pong through ctl; a close frame is answered and ends
// the read with a *CloseError.
func (r *wsReader) readMessage(max int, ctl func(op ws.OpCode, payload []byte) error) ([]byte, error) {
	var msg []byte
	partial := false
	for {
		h, err := ws.ReadHeaderBuffer(r, r.hdr[:])
		if err != nil {
			putReadBuf(msg)
			return nil, err
		}
		if h.Rsv != 0 || h.Masked {
			putReadBuf(msg)
			return nil, fmt.Errorf("%w: reserved bits or mask set on a server frame", errProtocol)
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > ws.MaxControlFramePayloadSize {
				putReadBuf(msg)
				return nil, fmt.Errorf("%w: fragmented or oversized control frame", errProtocol)
			}
			p := r.ctl[:h.Length]
			if _, err := io.ReadFull(r, p); err != nil {
				putReadBuf(msg)
				return nil, err
			}
			switch h.OpCode {
			case ws.OpPing:
				err = ctl(ws.OpPong, p)
			case ws.OpClose:
				ce := &CloseError{Code: ws.StatusNoStatusRcvd}
				if len(p) >= 2 {
					ce.Code = ws.StatusCode(binary.BigEndian.Uint16(p))
					ce.Reason = string(p[2:])
				}
				_ = ctl(ws.OpClose, p[:min(len(p), 2)])
				err = ce
			}
			if err != nil {
				putReadBuf(msg)
				return nil, err
			}
			continue
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if partial {
				putReadBuf(msg)
				return nil, fmt.Errorf("%w: new message inside a fragmented one", errProtocol)
			}
			partial = true
		case ws.OpContinuation:
			if !partial {
				return nil, fmt.Errorf("%w: continuation without a message", errProtocol)
			}
		default:
			putReadBuf(msg)
			return nil, fmt.Errorf("%w: reserved opcode %d", errProtocol, h.OpCode)
		}
		if h.Length > int64(max-len(msg)) {
			putReadBuf(msg)
			return nil, fmt.Errorf("%w: message over %d bytes", errProtocol, max)
		}
		off := len(msg)
		msg = growReadBuf(msg, off+int(h.Length))
		if _, err := io.ReadFull(r, msg[off:]); err != nil {
			putReadBuf(msg)
			return nil, err
		}
		if h.Fin {
			return msg, nil
		}
	}
}

// Read buffers come from two pools, for messages up to 4 KiB (a push of
// one or a few messages) and up to 64 KiB; larger ones (Welcomes during
// group setup) are allocated.
const (
	smallReadBuf = 4 << 10
	largeReadBuf = 64 << 10
)

var (
	smallReadBufs = sync.Pool{New: func() any { return new([smallReadBuf]byte) }}
	largeReadBufs = sync.Pool{New: func() any { return new([largeReadBuf]byte) }}
)

// growReadBuf returns b extended to n bytes, moving it to a bigger
// buffer (and b's back to its pool) if it does not fit.
func growReadBuf(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	var nb []byte
	switch {
	case n <= smallReadBuf:
		nb = smallReadBufs.Get().(*[smallReadBuf]byte)[:n]
	case n <= largeReadBuf:
		nb = largeReadBufs.Get().(*[largeReadBuf]byte)[:n]
	default:
		nb = make([]byte, n, max(n, 2*cap(b)))
	}
	copy(nb, b)
	putReadBuf(b)
	return nb
}

// putReadBuf returns a buffer to its pool if it came from one; it must
// not be used afterwards.
func putReadBuf(b []byte) {
	switch cap(b) {
	case smallReadBuf:
		smallReadBufs.Put((*[smallReadBuf]byte)(b[:smallReadBuf]))
	case largeReadBuf:
		largeReadBufs.Put((*[largeReadBuf]byte)(b[:largeReadBuf]))
	}
}

// writeMessage masks and writes one unfragmented frame whose payload is
// b[ws.MaxHeaderSize:]; the header is put in the room before it. The
// payload is masked in place.
func (c *Conn) writeMessage(op ws.OpCode, b []byte) error {
	payload := b[ws.MaxHeaderSize:]
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload)), Masked: true, Mask: ws.NewMask()}
	n := ws.HeaderSize(h)
	// The header is encoded at the start of b, then moved next to the
	// payload.
	if err := ws.WriteHeaderBuffer(io.Discard, h, b[:ws.MaxHeaderSize:ws.MaxHeaderSize]); err != nil {
		return err
	}
	copy(b[ws.MaxHeaderSize-n:], b[:n])
	ws.Cipher(payload, h.Mask, 0)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	if _, err := c.nc.Write(b[ws.MaxHeaderSize-n:]); err != nil {
		c.nc.Close() // a frame may have been cut off
		return err
	}
	return nil
}

// writeControl answers a control frame.
func (c *Conn) writeControl(op ws.OpCode, payload []byte) error {
	b := make([]byte, ws.MaxHeaderSize, ws.MaxHeaderSize+len(payload))
	return c.writeMessage(op, append(b, payload...))
}
