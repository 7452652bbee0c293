package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/gobwas/ws"

	"anom/internal/wsframe"
)

// The WebSocket layer (RFC 6455) of a session, framed by internal/wsframe.
// The upgrade hijacks the TLS connection from net/http and keeps neither
// of its bufio buffers; frames are read straight from the TLS connection
// (which buffers one record), and written, a batch of queued frames at a
// time, through a pooled buffer that a connection holds only while it
// writes.

// wsReader reads a client's frames: first the bytes net/http buffered,
// then the connection.
type wsReader = wsframe.Reader

// errWSClosed ends a read when the client closed the WebSocket.
var errWSClosed = wsframe.ErrClosed

// wsError is a protocol violation; the connection is closed with Code.
type wsError = wsframe.ProtocolError

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

func closeBody(code ws.StatusCode) []byte { return wsframe.CloseBody(code) }

// appendFrame appends one unmasked, unfragmented server frame.
func appendFrame(buf []byte, op ws.OpCode, payload []byte) []byte {
	return wsframe.AppendFrame(buf, op, payload)
}

// writeBufSize is the size of the pooled write buffers: a batch is written
// in one TLS record (and system call) per writeBufSize bytes.
const writeBufSize = 16 << 10

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize+64); return &b }}

// putReadBuf returns a message's buffer to its pool if it came from
// there; the message must not be used afterwards.
func putReadBuf(b []byte) { wsframe.PutBuffer(b) }
