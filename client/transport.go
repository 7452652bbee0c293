package client

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// Transport is how a Client reaches its network's server: the WebSocket
// of the protocol and HTTP for attachment blobs. DefaultTransport is the
// platform's; Config.Transport replaces it (a test counting dials, an
// application with its own proxy).
//
// On a native build the transport pins the network's CA (PinnedTransport).
// In a browser (GOOS=js) the page cannot choose what TLS trusts: the
// browser's WebSocket and fetch are used as they are (BrowserTransport),
// and the network's identity rests on what TLS never carried anyway: the
// device certificates, directory answers and transparency-log heads the
// root key signs, which the client checks on every connection.
type Transport interface {
	// WebSocket opens the protocol's WebSocket on network n at url
	// (wss://Address/v1/ws).
	WebSocket(ctx context.Context, n Network, url string) (*websocket.Conn, error)
	// HTTP returns the client of blob transfers with network n.
	HTTP(n Network) *http.Client
}

// wsURL is the address of the protocol's WebSocket on network n.
func wsURL(n Network) string { return "wss://" + n.Address + "/v1/ws" }

// transport returns cfg.Transport or the platform's default.
func (cfg *Config) transport() Transport {
	if cfg.Transport != nil {
		return cfg.Transport
	}
	return DefaultTransport()
}
