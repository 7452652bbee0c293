package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	anomv1 "anom/proto/anom/v1"
)

// Network errors.
var (
	// ErrNotConnected is returned by calls that need the server while the
	// client is not connected.
	ErrNotConnected = errors.New("client: not connected")
	// ErrPin is returned when the server's TLS certificate does not chain
	// to the pinned CA.
	ErrPin = errors.New("client: server certificate does not match the pinned CA")
	// ErrProtocol is returned when the server answers out of protocol.
	ErrProtocol = errors.New("client: protocol error")
)

// pinnedTLS returns a TLS configuration that accepts only a server whose
// certificate chains to the network CA with the pinned fingerprint.
func pinnedTLS(n Network) *tls.Config {
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: no certificate", ErrPin)
		}
		var ca *x509.Certificate
		if n.CACert != nil {
			sum := sha256.Sum256(n.CACert)
			if subtle.ConstantTimeCompare(sum[:], n.CAFingerprint[:]) != 1 {
				return fmt.Errorf("%w: the configured CA certificate has another fingerprint", ErrPin)
			}
			c, err := x509.ParseCertificate(n.CACert)
			if err != nil {
				return fmt.Errorf("%w: parsing the CA certificate: %v", ErrPin, err)
			}
			ca = c
		} else {
			for _, c := range cs.PeerCertificates {
				sum := sha256.Sum256(c.Raw)
				if subtle.ConstantTimeCompare(sum[:], n.CAFingerprint[:]) == 1 {
					ca = c
					break
				}
			}
			if ca == nil {
				return fmt.Errorf("%w: the server did not send the pinned CA", ErrPin)
			}
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: n.TLSServerName}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("%w: %v", ErrPin, err)
		}
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: n.TLSServerName,
		// The standard verification (system roots, dialled name) does
		// not apply to a closed network: VerifyConnection checks the
		// chain to the pinned CA instead.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
	}
}

// conn is one WebSocket session with the server: calls are matched to
// answers by frame ID; pushes go to a channel.
type conn struct {
	ws MessageConn
	// addr is the address connected to, the addrIdx-th of the
	// network's naddrs addresses (Network.addresses).
	addr            string
	addrIdx, naddrs int
	// closing is set when the client closes the connection itself.
	closing atomic.Bool

	mu      sync.Mutex
	nextID  uint64
	waiting map[uint64]chan *anomv1.Frame
	err     error // set when the connection ended

	pushes chan *anomv1.Frame
	done   chan struct{}
}

// maxFrame bounds a frame read from the server.
const maxFrame = 32 << 20

// dial opens the WebSocket at /v1/ws of network n through tr (over
// pinned TLS by default), trying n's addresses in turn (dialFrom).
func dial(ctx context.Context, tr Transport, n Network) (*conn, error) {
	return dialFrom(ctx, tr, n, 0)
}

// dialAttempt bounds one address's attempt when ctx has no deadline and
// other addresses are left to try.
const dialAttempt = 20 * time.Second

// dialFrom opens the WebSocket at the first of n's addresses that
// answers, starting with the from-th (Network.addresses) and going on in
// turn. Each attempt gets an equal share of the time ctx leaves, so an
// address that swallows packets does not use up the time of the others.
// When none answers the error names every address's failure.
func dialFrom(ctx context.Context, tr Transport, n Network, from int) (*conn, error) {
	addrs := n.addresses()
	var errs dialErrors
	for i := range addrs {
		k := (from + i) % len(addrs)
		left := len(addrs) - i
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && left > 1 {
			actx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(left))
		} else if !ok && left > 1 {
			actx, cancel = context.WithTimeout(ctx, dialAttempt)
		}
		at := n
		at.Address = addrs[k]
		ws, err := tr.WebSocket(actx, at, wsURL(at))
		cancel()
		if err == nil {
			return newConn(ws, addrs[k], k, len(addrs)), nil
		}
		errs = append(errs, fmt.Errorf("connecting to %s: %w", addrs[k], err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errs
}

// dialErrors are the failures of the addresses dialFrom tried.
type dialErrors []error

func (e dialErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e dialErrors) Unwrap() []error { return e }

// newConn starts handling the WebSocket ws, opened to the k-th of the
// network's n addresses, addr.
func newConn(ws MessageConn, addr string, k, n int) *conn {
	ws.SetReadLimit(maxFrame)
	c := &conn{
		ws:      ws,
		addr:    addr,
		addrIdx: k,
		naddrs:  n,
		waiting: map[uint64]chan *anomv1.Frame{},
		pushes:  make(chan *anomv1.Frame, 256),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

func (c *conn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for id, ch := range c.waiting {
			close(ch)
			delete(c.waiting, id)
		}
		c.mu.Unlock()
		close(c.done)
		close(c.pushes)
	}()
	for {
		var data []byte
		data, err = c.ws.ReadMessage(context.Background())
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrNotConnected, err)
			return
		}
		f := &anomv1.Frame{}
		if uerr := proto.Unmarshal(data, f); uerr != nil {
			err = fmt.Errorf("%w: undecodable frame: %w", ErrProtocol, uerr)
			c.ws.Close(CloseProtocolError, "bad frame")
			return
		}
		if f.GetId() == 0 {
			// Pushes are handled in order by one goroutine; a client
			// that falls far behind is disconnected rather than
			// buffering without bound.
			select {
			case c.pushes <- f:
			default:
				err = fmt.Errorf("%w: push queue full", ErrNotConnected)
				c.ws.Close(ClosePolicyViolation, "client too slow")
				return
			}
			continue
		}
		c.mu.Lock()
		ch := c.waiting[f.GetId()]
		delete(c.waiting, f.GetId())
		c.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
}

// call sends a request frame and waits for its answer; an Error answer
// becomes a *ServerError.
func (c *conn) call(ctx context.Context, f *anomv1.Frame) (*anomv1.Frame, error) {
	ch := make(chan *anomv1.Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	f.Id = c.nextID
	c.waiting[f.Id] = ch
	c.mu.Unlock()
	data, err := proto.Marshal(f)
	if err != nil {
		c.forget(f.Id)
		return nil, fmt.Errorf("encoding frame: %w", err)
	}
	if err := c.ws.WriteMessage(ctx, data); err != nil {
		c.forget(f.Id)
		return nil, fmt.Errorf("%w: writing: %w", ErrNotConnected, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		if e := resp.GetError(); e != nil {
			return nil, &ServerError{Code: codeOf(e.GetCode()), Message: e.GetMessage(), Epoch: e.GetEpoch(),
				RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond}
		}
		return resp, nil
	case <-ctx.Done():
		c.forget(f.Id)
		return nil, ctx.Err()
	}
}

func (c *conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.waiting, id)
	c.mu.Unlock()
}

func (c *conn) close() {
	c.closing.Store(true)
	c.ws.Close(CloseNormal, "")
}

// handshake sends Hello and returns the server's Challenge.
func (c *conn) handshake(ctx context.Context) (*anomv1.Challenge, error) {
	resp, err := c.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Hello{Hello: &anomv1.Hello{Version: uint32(anomv1.ProtocolVersion_PROTOCOL_VERSION_1)}}})
	if err != nil {
		return nil, fmt.Errorf("saying hello: %w", err)
	}
	ch := resp.GetChallenge()
	if ch == nil || len(ch.GetNonce()) < 16 {
		return nil, fmt.Errorf("saying hello: %w: no challenge", ErrProtocol)
	}
	return ch, nil
}
