package client

import (
	"context"
	"net/http"
)

// Transport is how a Client reaches its network's server: the WebSocket
// of the protocol and HTTP for attachment blobs. DefaultTransport is the
// platform's; Config.Transport replaces it (a test counting dials, an
// application with its own proxy), usually by wrapping DefaultTransport.
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
	WebSocket(ctx context.Context, n Network, url string) (MessageConn, error)
	// HTTP returns the client of blob transfers with network n.
	HTTP(n Network) *http.Client
}

// MessageConn is an open WebSocket as the client uses it: whole binary
// messages each way. ReadMessage is called from one goroutine, and
// WriteMessage from one at a time; Close may come from any goroutine,
// during either.
type MessageConn interface {
	// SetReadLimit bounds the messages ReadMessage accepts: a longer one
	// fails the read and closes the connection. The client sets it before
	// the first read.
	SetReadLimit(n int64)
	// ReadMessage waits for the next binary message; text messages are
	// skipped. Its error ends the connection.
	ReadMessage(ctx context.Context) ([]byte, error)
	// WriteMessage sends msg as one binary message.
	WriteMessage(ctx context.Context, msg []byte) error
	// Close closes the connection with a WebSocket close code (RFC 6455,
	// section 7.4: CloseNormal and the others) and a short reason.
	Close(code int, reason string) error
}

// WebSocket close codes the client closes a connection with (RFC 6455,
// section 7.4.1).
const (
	// CloseNormal: the client is done with the connection.
	CloseNormal = 1000
	// CloseGoingAway: the endpoint is going away.
	CloseGoingAway = 1001
	// CloseProtocolError: the server sent something out of protocol.
	CloseProtocolError = 1002
	// ClosePolicyViolation: the client fell too far behind the server's
	// pushes.
	ClosePolicyViolation = 1008
)

// wsURL is the address of the protocol's WebSocket on network n.
func wsURL(n Network) string { return "wss://" + n.Address + "/v1/ws" }

// transport returns cfg.Transport or the platform's default.
func (cfg *Config) transport() Transport {
	if cfg.Transport != nil {
		return cfg.Transport
	}
	return DefaultTransport()
}
