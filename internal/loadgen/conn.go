package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	anomv1 "anom/proto/anom/v1"
)

// Target says where the server is and how to reach it.
type Target struct {
	// Addr is the server's host:port.
	Addr string
	// Roots verifies the server's TLS certificate (the network CA).
	Roots *x509.CertPool
	// ServerName is the network name devices sign when authenticating;
	// "" means "anom".
	ServerName string
	// TLSServerName is the name checked in the server's certificate; ""
	// means the host of Addr.
	TLSServerName string
	// Sources are local addresses to dial from, used in turn, so that
	// many connections do not exhaust one address's ephemeral ports; nil
	// lets the system choose.
	Sources []net.IP

	once    sync.Once
	clients []*http.Client
}

func (t *Target) serverName() string {
	if t.ServerName == "" {
		return "anom"
	}
	return t.ServerName
}

// client returns the HTTP client for connection number i.
func (t *Target) client(i int) *http.Client {
	t.once.Do(func() {
		srcs := t.Sources
		if len(srcs) == 0 {
			srcs = []net.IP{nil}
		}
		host, _, _ := net.SplitHostPort(t.Addr)
		name := t.TLSServerName
		if name == "" {
			name = host
		}
		tc := &tls.Config{RootCAs: t.Roots, ServerName: name, MinVersion: tls.VersionTLS13}
		for _, ip := range srcs {
			d := &net.Dialer{Timeout: 30 * time.Second}
			if ip != nil {
				d.LocalAddr = &net.TCPAddr{IP: ip}
			}
			t.clients = append(t.clients, &http.Client{Transport: &http.Transport{
				DialContext:         d.DialContext,
				TLSClientConfig:     tc,
				TLSHandshakeTimeout: 30 * time.Second,
				DisableKeepAlives:   true,
				DisableCompression:  true,
			}})
		}
	})
	return t.clients[i%len(t.clients)]
}

// ServerError is an Error frame the server answered with.
type ServerError struct {
	Code    anomv1.ErrorCode
	Message string
}

func (e *ServerError) Error() string { return fmt.Sprintf("server: %v: %s", e.Code, e.Message) }

// ErrClosed is returned by calls on a connection that has ended.
var ErrClosed = errors.New("connection closed")

// Conn is one WebSocket connection to the server. Requests may be
// outstanding concurrently; answers are matched by id. Pushes go to the
// handler given to Dial, called on the reading goroutine.
type Conn struct {
	ws      *websocket.Conn
	onPush  func(*anomv1.Frame)
	nextID  atomic.Uint64
	mu      sync.Mutex
	waiting map[uint64]chan *anomv1.Frame
	done    chan struct{}
	err     error // why the connection ended; set before done closes
}

// Dial opens connection number i (which picks the source address).
func Dial(ctx context.Context, t *Target, i int, onPush func(*anomv1.Frame)) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, "wss://"+t.Addr+"/v1/ws", &websocket.DialOptions{
		HTTPClient:      t.client(i),
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", t.Addr, err)
	}
	ws.SetReadLimit(4 << 20)
	c := &Conn{ws: ws, onPush: onPush, waiting: map[uint64]chan *anomv1.Frame{}, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *Conn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	}()
	// One buffer for every message: decoding copies what it keeps, and
	// the load generator shares the machine with the server it measures.
	var buf bytes.Buffer
	for {
		var r io.Reader
		_, r, err = c.ws.Reader(context.Background())
		if err != nil {
			return
		}
		buf.Reset()
		if _, err = buf.ReadFrom(r); err != nil {
			return
		}
		f := &anomv1.Frame{}
		if err = proto.Unmarshal(buf.Bytes(), f); err != nil {
			err = fmt.Errorf("decoding frame from server: %w", err)
			c.ws.CloseNow()
			return
		}
		if f.Id == 0 {
			if d := f.GetPushDisconnect(); d != nil {
				err = &ServerError{Code: d.Code, Message: d.Message}
				c.ws.CloseNow()
				return
			}
			if f.GetError() == nil {
				if c.onPush != nil {
					c.onPush(f)
				}
				continue
			}
		}
		c.mu.Lock()
		ch := c.waiting[f.Id]
		delete(c.waiting, f.Id)
		c.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended (nil while it is open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection at once.
func (c *Conn) Close() { c.ws.CloseNow() }

// Call sends a request and waits for its answer. An Error answer is
// returned as a *ServerError.
func (c *Conn) Call(ctx context.Context, f *anomv1.Frame) (*anomv1.Frame, error) {
	ch, err := c.Start(ctx, f)
	if err != nil {
		return nil, err
	}
	return c.Wait(ctx, ch)
}

// writeTimeout bounds one request's write; a connection that cannot take
// it in that time is closed.
const writeTimeout = 30 * time.Second

// Start sends a request without waiting; Wait takes its answer from the
// returned channel.
func (c *Conn) Start(ctx context.Context, f *anomv1.Frame) (<-chan *anomv1.Frame, error) {
	f.Id = c.nextID.Add(1)
	b, err := proto.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	ch := make(chan *anomv1.Frame, 1)
	c.mu.Lock()
	c.waiting[f.Id] = ch
	c.mu.Unlock()
	// coder/websocket closes the connection when the context of a write
	// ends mid-write; the caller's context ends whenever a phase does, so
	// the write gets a timeout of its own instead.
	if err := ctx.Err(); err != nil {
		c.mu.Lock()
		delete(c.waiting, f.Id)
		c.mu.Unlock()
		return nil, err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	err = c.ws.Write(wctx, websocket.MessageBinary, b)
	cancel()
	if err != nil {
		c.mu.Lock()
		delete(c.waiting, f.Id)
		c.mu.Unlock()
		return nil, fmt.Errorf("sending request: %w", err)
	}
	return ch, nil
}

// Wait waits for the answer to a request made with Start.
func (c *Conn) Wait(ctx context.Context, ch <-chan *anomv1.Frame) (*anomv1.Frame, error) {
	select {
	case r := <-ch:
		return answer(r)
	case <-c.done:
		select {
		case r := <-ch:
			return answer(r)
		default:
		}
		if err := c.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func answer(r *anomv1.Frame) (*anomv1.Frame, error) {
	if e := r.GetError(); e != nil {
		return r, &ServerError{Code: e.Code, Message: e.Message}
	}
	return r, nil
}
