package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"google.golang.org/protobuf/proto"

	"anom/internal/wire"
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
	// MetricsAddr is the host:port of the server's metrics listener
	// (plain HTTP, anom server --metrics-listen), which ScrapeMemory
	// reads; "" means none.
	MetricsAddr string

	once    sync.Once
	tls     *tls.Config
	dialers []*net.Dialer
	// metrics reads MetricsAddr's /metrics over one kept-alive
	// connection from the system's choice of address: not from Sources,
	// whose ports the load's connections may use up.
	metrics *http.Client
}

func (t *Target) serverName() string {
	if t.ServerName == "" {
		return "anom"
	}
	return t.ServerName
}

func (t *Target) init() {
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
		t.tls = &tls.Config{RootCAs: t.Roots, ServerName: name, MinVersion: tls.VersionTLS13}
		for _, ip := range srcs {
			d := &net.Dialer{Timeout: 30 * time.Second}
			if ip != nil {
				d.LocalAddr = &net.TCPAddr{IP: ip}
			}
			t.dialers = append(t.dialers, d)
		}
		t.metrics = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	})
}

// ServerError is an Error frame the server answered with.
type ServerError struct {
	Code    anomv1.ErrorCode
	Message string
	// RetryAfter is how long to wait before trying again, with
	// ERROR_CODE_RATE_LIMITED.
	RetryAfter time.Duration
}

func (e *ServerError) Error() string { return fmt.Sprintf("server: %v: %s", e.Code, e.Message) }

// ErrClosed is returned by calls on a connection that has ended.
var ErrClosed = errors.New("connection closed")

// Pushed is a Messages push read without copying: its byte slices point
// into the connection's read buffer and are valid only during the
// handler's call. The added devices of a commit are not read
// (Handlers.Frame has them).
type Pushed = wire.Pushed

// Handlers says what a connection does with the server's pushes; they
// are called on the connection's reading goroutine. A nil field ignores
// what it would get.
type Handlers struct {
	// Messages gets each Messages push, read without copying or
	// allocating (see Pushed).
	Messages func(*Pushed)
	// Frame gets every other push, decoded in full, and Messages pushes
	// too when Messages is nil.
	Frame func(*anomv1.Frame)
}

// Conn is one WebSocket connection to the server (RFC 6455 over TLS,
// github.com/gobwas/ws framing). Requests may be outstanding
// concurrently; answers are matched by id. Pushes go to the Handlers
// given when dialing.
type Conn struct {
	nc       net.Conn
	rd       wsReader
	handlers Handlers
	nextID   atomic.Uint64
	wmu      sync.Mutex // one frame written at a time
	mu       sync.Mutex
	waiting  map[uint64]waiter
	pushed   Pushed // reused for each Messages push
	done     chan struct{}
	err      error // why the connection ended; set before done closes
}

// waiter is where the answer to a request goes: full gets the decoded
// frame; fast, used by Sender, gets a Sent answer without decoding it.
type waiter struct {
	full chan *anomv1.Frame
	fast chan reply
}

// reply is an answer to a Sender: a Sent (frame nil) or anything else,
// decoded.
type reply struct {
	id    uint64
	seq   uint64
	frame *anomv1.Frame
}

// Dial opens connection number i (which picks the source address); every
// push is decoded and given to onPush (nil ignores them).
func Dial(ctx context.Context, t *Target, i int, onPush func(*anomv1.Frame)) (*Conn, error) {
	return DialWith(ctx, t, i, Handlers{Frame: onPush})
}

// DialWith opens connection number i with the given push handlers.
func DialWith(ctx context.Context, t *Target, i int, h Handlers) (*Conn, error) {
	t.init()
	d := ws.Dialer{
		Timeout:   30 * time.Second,
		NetDial:   t.dialers[i%len(t.dialers)].DialContext,
		TLSConfig: t.tls,
	}
	nc, br, _, err := d.Dial(ctx, "wss://"+t.Addr+"/v1/ws")
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", t.Addr, err)
	}
	var pre []byte
	if br != nil {
		// Bytes the server sent right after its handshake answer.
		pre = make([]byte, br.Buffered())
		_, _ = br.Read(pre)
		ws.PutReader(br)
	}
	return newConn(nc, pre, h), nil
}

// newConn starts a Conn on an upgraded connection; pre is what the server
// sent that was read with the handshake.
func newConn(nc net.Conn, pre []byte, h Handlers) *Conn {
	c := &Conn{nc: nc, handlers: h, waiting: map[uint64]waiter{}, done: make(chan struct{})}
	c.rd.Conn, c.rd.Pre = nc, pre
	go c.readLoop()
	return c
}

// maxMessage bounds one message from the server.
const maxMessage = 4 << 20

func (c *Conn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.nc.Close()
		close(c.done)
	}()
	for {
		var msg []byte
		_, msg, err = c.rd.ReadMessage(maxMessage, c.writeControl)
		if err != nil {
			return
		}
		err = c.dispatch(msg)
		putReadBuf(msg)
		if err != nil {
			return
		}
	}
}

// dispatch routes one message from the server.
func (c *Conn) dispatch(msg []byte) error {
	v, ok := wire.ViewFrame(msg)
	if ok && v.ID == 0 && v.IsPushMessages() && c.handlers.Messages != nil {
		if wire.ReadPushed(v.BodyBytes, &c.pushed) {
			c.handlers.Messages(&c.pushed)
			return nil
		}
	}
	if ok && v.ID != 0 && v.IsSent() {
		if seq, _, ok := wire.ReadSent(v.BodyBytes); ok {
			c.mu.Lock()
			w, found := c.waiting[v.ID]
			if found && w.fast != nil {
				delete(c.waiting, v.ID)
			}
			c.mu.Unlock()
			if found && w.fast != nil {
				w.fast <- reply{id: v.ID, seq: seq}
				return nil
			}
		}
	}
	f := &anomv1.Frame{}
	if err := proto.Unmarshal(msg, f); err != nil { // copies what it keeps
		return fmt.Errorf("decoding frame from server: %w", err)
	}
	if f.Id == 0 {
		if d := f.GetPushDisconnect(); d != nil {
			return &ServerError{Code: d.Code, Message: d.Message}
		}
		if f.GetError() == nil {
			if pm := f.GetPushMessages(); pm != nil && c.handlers.Messages != nil {
				// Encoded in a shape the fast reader leaves alone.
				c.handlers.Messages(wire.PushedFrom(pm, &c.pushed))
				return nil
			}
			if c.handlers.Frame != nil {
				c.handlers.Frame(f)
			}
			return nil
		}
	}
	c.mu.Lock()
	w := c.waiting[f.Id]
	delete(c.waiting, f.Id)
	c.mu.Unlock()
	switch {
	case w.full != nil:
		w.full <- f
	case w.fast != nil:
		w.fast <- reply{id: f.Id, frame: f}
	}
	return nil
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
func (c *Conn) Close() { c.nc.Close() }

// Call sends a request and waits for its answer. An Error answer is
// returned as a *ServerError.
func (c *Conn) Call(ctx context.Context, f *anomv1.Frame) (*anomv1.Frame, error) {
	ch, err := c.Start(ctx, f)
	if err != nil {
		return nil, err
	}
	return c.Wait(ctx, ch)
}

// writeTimeout bounds one frame's write; a connection that cannot take
// it in that time is closed.
const writeTimeout = 30 * time.Second

// Start sends a request without waiting; Wait takes its answer from the
// returned channel.
func (c *Conn) Start(ctx context.Context, f *anomv1.Frame) (<-chan *anomv1.Frame, error) {
	f.Id = c.nextID.Add(1)
	b, err := proto.MarshalOptions{}.MarshalAppend(make([]byte, ws.MaxHeaderSize, ws.MaxHeaderSize+proto.Size(f)), f)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	ch := make(chan *anomv1.Frame, 1)
	if err := c.request(ctx, f.Id, waiter{full: ch}, b); err != nil {
		return nil, err
	}
	return ch, nil
}

// request registers w for the answer to request id and sends the frame
// in b (after ws.MaxHeaderSize bytes of room for the header). A request
// whose context has ended is not sent; once writing, the write has its
// own timeout, so that a phase's end does not cut a frame in half.
func (c *Conn) request(ctx context.Context, id uint64, w waiter, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.waiting[id] = w
	c.mu.Unlock()
	if err := c.writeMessage(ws.OpBinary, b); err != nil {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return fmt.Errorf("sending request: %w", err)
	}
	return nil
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
		return nil, c.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Conn) closedErr() error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

func answer(r *anomv1.Frame) (*anomv1.Frame, error) {
	if e := r.GetError(); e != nil {
		return r, &ServerError{Code: e.Code, Message: e.Message, RetryAfter: time.Duration(e.RetryAfterMs) * time.Millisecond}
	}
	return r, nil
}

// Sender sends group messages on one connection, one at a time, and
// waits for each answer, allocating nothing per message. It is not safe
// for concurrent use; make one per sending goroutine.
type Sender struct {
	c   *Conn
	buf []byte
	ch  chan reply
}

// Sender returns a new Sender on c.
func (c *Conn) Sender() *Sender {
	return &Sender{c: c, ch: make(chan reply, 1)}
}

// Send sends Send{group, message, escrowRecord} (escrowRecord may be
// nil) and waits for the server's answer: Sent returns its sequence
// number, an Error a *ServerError.
func (s *Sender) Send(ctx context.Context, group, message, escrowRecord []byte) (seq uint64, err error) {
	c := s.c
	id := c.nextID.Add(1)
	if cap(s.buf) < ws.MaxHeaderSize {
		s.buf = make([]byte, ws.MaxHeaderSize, ws.MaxHeaderSize+len(group)+len(message)+len(escrowRecord)+32)
	}
	s.buf = wire.AppendSendFrame(s.buf[:ws.MaxHeaderSize], id, group, message, escrowRecord)
	if err := c.request(ctx, id, waiter{fast: s.ch}, s.buf); err != nil {
		return 0, err
	}
	for {
		select {
		case r := <-s.ch:
			if r.id != id {
				continue // cannot happen: an abandoned request's answer is drained below
			}
			return r.result()
		case <-c.done:
			select {
			case r := <-s.ch:
				if r.id == id {
					return r.result()
				}
			default:
			}
			return 0, c.closedErr()
		case <-ctx.Done():
			// Abandoned: unless the reader has already taken the
			// waiter (its answer is then on the way, and is drained
			// here), no answer will come to s.ch.
			c.mu.Lock()
			_, pending := c.waiting[id]
			delete(c.waiting, id)
			c.mu.Unlock()
			if !pending {
				<-s.ch
			}
			return 0, ctx.Err()
		}
	}
}

func (r reply) result() (uint64, error) {
	if r.frame == nil {
		return r.seq, nil
	}
	if e := r.frame.GetError(); e != nil {
		return 0, &ServerError{Code: e.Code, Message: e.Message, RetryAfter: time.Duration(e.RetryAfterMs) * time.Millisecond}
	}
	if s := r.frame.GetSent(); s != nil {
		return s.Seq, nil
	}
	return 0, fmt.Errorf("unexpected answer to Send: %T", r.frame.GetBody())
}
