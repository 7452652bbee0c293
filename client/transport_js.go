//go:build js

package client

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// DefaultTransport returns the platform's transport: BrowserTransport.
func DefaultTransport() Transport { return BrowserTransport{} }

// BrowserTransport uses the browser's WebSocket and fetch. The browser
// checks TLS with its own roots, not the network's pinned CA: the
// network's identity is pinned by its root key and transparency log (see
// Transport).
type BrowserTransport struct{}

// WebSocket opens url with the browser's WebSocket.
func (BrowserTransport) WebSocket(ctx context.Context, _ Network, url string) (MessageConn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	return wsConn{ws}, nil
}

// HTTP returns a client over the browser's fetch.
func (BrowserTransport) HTTP(Network) *http.Client { return &http.Client{} }
