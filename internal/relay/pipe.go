package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TLS record content types (RFC 8446, section 5.1).
const (
	recChangeCipherSpec = 20
	recAlert            = 21
	recHandshake        = 22
	recApplicationData  = 23
)

const (
	recordHeaderLen = 5
	// maxRecordLen bounds a record's body: a TLS 1.2 ciphertext may
	// carry 2^14+2048 bytes (TLS 1.3: 2^14+256).
	maxRecordLen = 1<<14 + 2048
	// maxHelloLen bounds the first record, a plaintext handshake record.
	maxHelloLen = 1 << 14
)

// errNotTLS: the client's bytes are not TLS records.
var errNotTLS = errors.New("not a TLS stream")

// pipe is one relayed connection.
type pipe struct {
	r      *Relay
	client *net.TCPConn
	src    netip.Addr
	start  time.Time

	mu     sync.Mutex
	up     *net.TCPConn
	closed bool

	// last is when a copy last moved bytes (Unix nanoseconds); the idle
	// timeout counts from it.
	last atomic.Int64
	// idled is set by the direction that closed the pipe for idleness.
	idled atomic.Bool
}

// run relays the connection until both directions end, then closes it.
func (p *pipe) run() {
	p.start = time.Now()
	p.last.Store(p.start.UnixNano())
	defer p.r.done(p)
	defer p.closeAll()
	cfg := &p.r.cfg

	deadline := p.start.Add(cfg.HandshakeTimeout)
	p.client.SetReadDeadline(deadline)
	hello, err := readHello(p.client)
	if err != nil {
		p.countHandshakeEnd(err)
		return
	}
	up, u := p.dialUpstream()
	if up == nil {
		p.r.st.noUpstream.Add(1)
		return
	}
	defer u.conns.Add(-1)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.up = up
	p.mu.Unlock()
	p.r.st.relayed.Add(1)
	if _, err := up.Write(hello); err != nil {
		return
	}
	p.r.st.bytesUp.Add(uint64(len(hello)))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.copy(p.client, up, &p.r.st.bytesDown)
	}()
	if err := p.handshake(up); err != nil {
		p.countHandshakeEnd(err)
		p.closeAll()
	} else {
		p.copy(up, p.client, &p.r.st.bytesUp)
	}
	wg.Wait()
	if p.idled.Load() {
		p.r.st.idleTimeouts.Add(1)
	}
	if cfg.LogClientAddresses {
		p.r.log.Debug("connection ended", "client", p.client.RemoteAddr().String(), "upstream", u.addr, "duration", time.Since(p.start).Round(time.Millisecond))
	}
}

// countHandshakeEnd counts a connection ended before its handshake did.
func (p *pipe) countHandshakeEnd(err error) {
	switch {
	case errors.Is(err, errNotTLS):
		p.r.st.notTLS.Add(1)
	case errors.Is(err, os.ErrDeadlineExceeded):
		p.r.st.handshakeTimeouts.Add(1)
	}
	if p.r.cfg.LogClientAddresses {
		p.r.log.Debug("connection ended in the TLS handshake", "client", p.client.RemoteAddr().String(), "err", err)
	}
}

// readHello reads the client's first record, which must be a TLS
// handshake record (the ClientHello), header and body.
func readHello(c *net.TCPConn) ([]byte, error) {
	var h [recordHeaderLen]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, err
	}
	typ, n, err := parseHeader(h)
	if err != nil {
		return nil, err
	}
	if typ != recHandshake || n > maxHelloLen || n == 0 {
		return nil, errNotTLS
	}
	b := make([]byte, recordHeaderLen+n)
	copy(b, h[:])
	if _, err := io.ReadFull(c, b[recordHeaderLen:]); err != nil {
		return nil, err
	}
	return b, nil
}

// parseHeader checks a TLS record header and returns its type and body
// length. The relay reads no further into a record.
func parseHeader(h [recordHeaderLen]byte) (typ byte, n int, err error) {
	typ = h[0]
	if typ < recChangeCipherSpec || typ > recApplicationData || h[1] != 3 {
		return 0, 0, errNotTLS
	}
	n = int(binary.BigEndian.Uint16(h[3:]))
	if n > maxRecordLen {
		return 0, 0, errNotTLS
	}
	return typ, n, nil
}

// handshake forwards the client's records to up until the first
// application-data record (in TLS 1.3 the client's encrypted Finished),
// within the handshake deadline already set on the client connection.
func (p *pipe) handshake(up *net.TCPConn) error {
	var h [recordHeaderLen]byte
	for {
		if _, err := io.ReadFull(p.client, h[:]); err != nil {
			return err
		}
		typ, n, err := parseHeader(h)
		if err != nil {
			return err
		}
		if _, err := up.Write(h[:]); err != nil {
			return err
		}
		m, err := io.CopyN(up, p.client, int64(n))
		p.r.st.bytesUp.Add(uint64(recordHeaderLen + m))
		if err != nil {
			return err
		}
		if typ == recApplicationData {
			return nil
		}
	}
}

// copy copies src to dst until src ends (then half-closes dst), a
// connection fails, or both directions have been idle for IdleTimeout
// (then it closes the pipe). io.Copy between TCP connections splices.
func (p *pipe) copy(dst, src *net.TCPConn, count *atomic.Uint64) {
	idle := p.r.cfg.IdleTimeout
	window := idle / 4
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(window))
		} else {
			src.SetReadDeadline(time.Time{})
		}
		n, err := io.Copy(dst, src)
		now := time.Now()
		if n > 0 {
			count.Add(uint64(n))
			p.last.Store(now.UnixNano())
		}
		switch {
		case err == nil:
			// src said it is done: pass the end on and let the other
			// direction finish.
			dst.CloseWrite()
			return
		case idle > 0 && errors.Is(err, os.ErrDeadlineExceeded):
			// A read deadline ends a splice with its pipe empty, so
			// nothing is lost by carrying on.
			if now.Sub(time.Unix(0, p.last.Load())) < idle {
				continue
			}
			p.idled.Store(true)
		}
		p.closeAll()
		return
	}
}

// dialUpstream connects to the healthy upstream with the fewest
// connections, trying the others in turn when one cannot be reached.
func (p *pipe) dialUpstream() (*net.TCPConn, *upstream) {
	cfg := &p.r.cfg
	tried := map[*upstream]bool{}
	for {
		u := p.r.ups.pick(tried)
		if u == nil {
			return nil, nil
		}
		tried[u] = true
		u.conns.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", u.addr)
		cancel()
		if err != nil {
			u.conns.Add(-1)
			p.r.ups.mark(u, err)
			continue
		}
		return c.(*net.TCPConn), u
	}
}

// closeAll closes both connections; it may be called more than once and
// from any goroutine.
func (p *pipe) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.client.Close()
	if p.up != nil {
		p.up.Close()
	}
}
