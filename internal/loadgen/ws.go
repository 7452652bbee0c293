package loadgen

import (
	"time"

	"github.com/gobwas/ws"

	"anom/internal/wsframe"
)

// The client side of the WebSocket framing, from internal/wsframe (the
// server's framing too): frames are read straight from the TLS
// connection into pooled buffers that a connection holds only while it
// handles a message; a frame is written, header and masked payload
// together, with one Write (so one TLS record for a message up to 16
// KiB, as a buffered writer would make).

// CloseError is a close frame from the server.
type CloseError = wsframe.CloseError

// errProtocol is wrapped by errors about frames the server may not send.
var errProtocol = wsframe.ErrProtocol

// wsReader reads the server's frames: first the bytes the handshake's
// reader had buffered, then the connection.
type wsReader = wsframe.Reader

// putReadBuf returns a message's buffer to its pool.
func putReadBuf(b []byte) { wsframe.PutBuffer(b) }

// writeMessage masks and writes one unfragmented frame whose payload is
// b[wsframe.HeaderRoom:]; the header is put in the room before it. The
// payload is masked in place.
func (c *Conn) writeMessage(op ws.OpCode, b []byte) error {
	frame := wsframe.MaskFrame(op, b)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	if _, err := c.nc.Write(frame); err != nil {
		c.nc.Close() // a frame may have been cut off
		return err
	}
	return nil
}

// writeControl answers a control frame.
func (c *Conn) writeControl(op ws.OpCode, payload []byte) error {
	b := make([]byte, wsframe.HeaderRoom, wsframe.HeaderRoom+len(payload))
	return c.writeMessage(op, append(b, payload...))
}
