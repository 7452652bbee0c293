//go:build !js

package client

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// DefaultTransport returns the platform's transport: PinnedTransport.
func DefaultTransport() Transport { return PinnedTransport{} }

// PinnedTransport connects over TLS 1.3 and accepts only a server whose
// certificate chains to the CA pinned in the Network (CAFingerprint).
type PinnedTransport struct{}

// WebSocket dials url over pinned TLS, without compression.
func (t PinnedTransport) WebSocket(ctx context.Context, n Network, url string) (MessageConn, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: t.HTTP(n), CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	return wsConn{ws}, nil
}

// HTTP returns a client over pinned TLS.
func (PinnedTransport) HTTP(n Network) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     pinnedTLS(n),
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
}
