package client

import (
	"context"

	"github.com/coder/websocket"
)

// wsConn is a MessageConn over github.com/coder/websocket, which the
// transports of every platform dial with.
type wsConn struct {
	ws *websocket.Conn
}

func (c wsConn) SetReadLimit(n int64) { c.ws.SetReadLimit(n) }

func (c wsConn) ReadMessage(ctx context.Context) ([]byte, error) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ == websocket.MessageBinary {
			return data, nil
		}
	}
}

func (c wsConn) WriteMessage(ctx context.Context, msg []byte) error {
	return c.ws.Write(ctx, websocket.MessageBinary, msg)
}

func (c wsConn) Close(code int, reason string) error {
	return c.ws.Close(websocket.StatusCode(code), reason)
}
