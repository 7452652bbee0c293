package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a test upstream: on accept it writes its one-byte name, then
// echoes what it reads. It counts its open connections.
type backend struct {
	t    *testing.T
	name byte
	addr string

	mu       sync.Mutex
	l        net.Listener
	conns    map[net.Conn]bool
	open     atomic.Int64
	maxOpen  atomic.Int64
	accepted atomic.Int64
}

func newBackend(t *testing.T, name byte) *backend {
	b := &backend{t: t, name: name, conns: map[net.Conn]bool{}}
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

func (b *backend) start(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.l, b.addr = l, l.Addr().String()
	b.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			n := b.open.Add(1)
			for m := b.maxOpen.Load(); n > m && !b.maxOpen.CompareAndSwap(m, n); m = b.maxOpen.Load() {
			}
			b.mu.Lock()
			b.conns[c] = true
			b.mu.Unlock()
			go func() {
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					b.open.Add(-1)
					c.Close()
				}()
				if _, err := c.Write([]byte{b.name}); err != nil {
					return
				}
				io.Copy(c, c)
			}()
		}
	}()
}

// stop closes the listener and every connection: the upstream is down.
func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.l.Close()
	for c := range b.conns {
		c.Close()
	}
}

// startRelay runs a relay with cfg on a loopback port until the test
// ends; stop drains it and returns Serve's error.
func startRelay(t *testing.T, cfg Config) (r *Relay, addr string, stop func() error) {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, l) }()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() {
			cancel()
			serr = <-done
		})
		return serr
	}
	t.Cleanup(func() { stop() })
	return r, l.Addr().String(), stop
}

// record is a TLS record of type typ with body.
func record(typ byte, body []byte) []byte {
	b := []byte{typ, 3, 3, 0, 0}
	binary.BigEndian.PutUint16(b[3:], uint16(len(body)))
	return append(b, body...)
}

// hello is what a client's first flight looks like to the relay.
var hello = record(recHandshake, []byte("client hello"))

// finished ends the client's handshake as the relay sees it.
var finished = record(recApplicationData, []byte("encrypted finished"))

// dialFrom connects to addr from the loopback address local ("" for
// any).
func dialFrom(t *testing.T, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// relayed opens a connection through the relay at addr that completes
// the handshake and returns it with the name of the upstream it reached;
// name is 0 when the relay refused or closed the connection instead. It
// may run in another goroutine than the test's.
func relayed(t *testing.T, addr, local string) (net.Conn, byte) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		// A refused connection may be reset before connect returns.
		return nil, 0
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(append(append([]byte(nil), hello...), finished...)); err != nil {
		return c, 0
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return c, 0
	}
	// The upstream echoes the handshake back: the relay passed it on
	// unchanged.
	echo := make([]byte, len(hello)+len(finished))
	if _, err := io.ReadFull(c, echo); err != nil || string(echo) != string(hello)+string(finished) {
		t.Errorf("echo %q (%v), want the handshake sent", echo, err)
		return c, 0
	}
	c.SetReadDeadline(time.Time{})
	return c, b[0]
}

// closedSoon reports whether the relay closes c within d.
func closedSoon(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testConfig(ups ...*backend) Config {
	cfg := Config{HealthEvery: time.Hour, Grace: time.Second, StatsEvery: -1}
	for _, u := range ups {
		cfg.Upstreams = append(cfg.Upstreams, u.addr)
	}
	return cfg
}

// TestSpread: connections go to the upstream with the fewest, so two
// upstreams get half each, and new ones fill the one left emptier.
func TestSpread(t *testing.T) {
	a, b := newBackend(t, 'A'), newBackend(t, 'B')
	_, addr, _ := startRelay(t, testConfig(a, b))
	by := map[byte][]net.Conn{}
	for range 10 {
		c, name := relayed(t, addr, "")
		if name == 0 {
			t.Fatal("connection not relayed")
		}
		by[name] = append(by[name], c)
	}
	if len(by['A']) != 5 || len(by['B']) != 5 {
		t.Fatalf("spread A=%d B=%d, want 5 each", len(by['A']), len(by['B']))
	}
	for _, c := range by['A'] {
		c.Close()
	}
	waitFor(t, "A's connections to end", func() bool { return a.open.Load() == 0 })
	for range 4 {
		if _, name := relayed(t, addr, ""); name != 'A' {
			t.Fatalf("new connection went to %c, want A (fewer connections)", name)
		}
	}
}

// TestPerSourceCap: a source gets MaxPerSource connections at once, the
// next is closed without reaching an upstream; another source is not
// affected, and a closed connection frees its place.
func TestPerSourceCap(t *testing.T) {
	up := newBackend(t, 'A')
	cfg := testConfig(up)
	cfg.MaxPerSource = 3
	r, addr, _ := startRelay(t, cfg)
	var held []net.Conn
	for range 3 {
		c, name := relayed(t, addr, "127.0.0.1")
		if name == 0 {
			t.Fatal("connection within the cap refused")
		}
		held = append(held, c)
	}
	if _, name := relayed(t, addr, "127.0.0.1"); name != 0 {
		t.Fatal("fourth connection from one source relayed")
	}
	if got := r.Stats().RefusedPerSource; got != 1 {
		t.Fatalf("RefusedPerSource = %d, want 1", got)
	}
	if _, name := relayed(t, addr, "127.0.0.2"); name == 0 {
		t.Fatal("another source refused")
	}
	held[0].Close()
	waitFor(t, "the closed connection's place", func() bool { return r.Stats().Active == 3 })
	if _, name := relayed(t, addr, "127.0.0.1"); name == 0 {
		t.Fatal("connection refused after one of the source's ended")
	}
	if got := r.Stats().Relayed; got != 5 {
		t.Fatalf("relayed %d connections, want 5", got)
	}
}

// TestUnhealthyUpstream: an upstream that fails its health check gets no
// connections; when it answers again it is back in the spread.
func TestUnhealthyUpstream(t *testing.T) {
	a, b := newBackend(t, 'A'), newBackend(t, 'B')
	cfg := testConfig(a, b)
	cfg.HealthEvery = 20 * time.Millisecond
	r, addr, _ := startRelay(t, cfg)
	a.stop()
	waitFor(t, "A marked down", func() bool { h := r.Healthy(); return len(h) == 1 && h[0] == b.addr })
	for range 4 {
		if _, name := relayed(t, addr, ""); name != 'B' {
			t.Fatalf("connection went to %q while A is down", name)
		}
	}
	a.start(a.addr)
	waitFor(t, "A back up", func() bool { return len(r.Healthy()) == 2 })
	for range 4 {
		if _, name := relayed(t, addr, ""); name != 'A' {
			t.Fatalf("connection went to %c, want A (back, and emptier)", name)
		}
	}
}

// TestUpstreamDownBetweenChecks: an upstream that stopped since its last
// check fails the connect; the relay marks it down and the client's
// connection goes to the next one.
func TestUpstreamDownBetweenChecks(t *testing.T) {
	a, b := newBackend(t, 'A'), newBackend(t, 'B')
	r, addr, _ := startRelay(t, testConfig(a, b)) // no check within the test
	a.stop()
	for range 4 {
		if _, name := relayed(t, addr, ""); name != 'B' {
			t.Fatalf("connection went to %q, want B", name)
		}
	}
	if h := r.Healthy(); len(h) != 1 || h[0] != b.addr {
		t.Fatalf("healthy = %v, want only B", h)
	}
	b.stop()
	if _, name := relayed(t, addr, ""); name != 0 {
		t.Fatal("relayed with every upstream down")
	}
	if got := r.Stats().NoUpstream; got != 1 {
		t.Fatalf("NoUpstream = %d, want 1", got)
	}
}

// TestDrain: on shutdown the relay stops accepting at once, a connection
// open carries on until it ends, and Serve returns then, before the
// grace period is over.
func TestDrain(t *testing.T) {
	up := newBackend(t, 'A')
	cfg := testConfig(up)
	cfg.Grace = 10 * time.Second
	_, addr, stop := startRelay(t, cfg)
	c, name := relayed(t, addr, "")
	if name == 0 {
		t.Fatal("not relayed")
	}
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	waitFor(t, "the listener to close", func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	for i := range 3 {
		msg := []byte{'x', byte(i)}
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write while draining: %v", err)
		}
		got := make([]byte, 2)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
			t.Fatalf("echo while draining: %q %v", got, err)
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) with a connection open", err)
	default:
	}
	c.Close()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Serve took %v after the last connection ended", d)
	}
}

// TestDrainGrace: connections still open when the grace period ends are
// closed, and Serve returns.
func TestDrainGrace(t *testing.T) {
	up := newBackend(t, 'A')
	cfg := testConfig(up)
	cfg.Grace = 200 * time.Millisecond
	_, addr, stop := startRelay(t, cfg)
	c, _ := relayed(t, addr, "")
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Serve returned after %v, want about the 200ms grace", d)
	}
	if !closedSoon(c, 2*time.Second) {
		t.Fatal("connection still open after the grace period")
	}
	waitFor(t, "the upstream connection to close", func() bool { return up.open.Load() == 0 })
}

// TestIdleTimeout: a connection with no byte either way for IdleTimeout
// is closed; one with traffic is not.
func TestIdleTimeout(t *testing.T) {
	up := newBackend(t, 'A')
	cfg := testConfig(up)
	cfg.IdleTimeout = 300 * time.Millisecond
	r, addr, _ := startRelay(t, cfg)
	quiet, _ := relayed(t, addr, "")
	busy, _ := relayed(t, addr, "")
	stopBusy := make(chan struct{})
	busyErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 1)
		for {
			select {
			case <-stopBusy:
				busyErr <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := busy.Write([]byte{1}); err != nil {
				busyErr <- err
				return
			}
			if _, err := io.ReadFull(busy, buf); err != nil {
				busyErr <- err
				return
			}
		}
	}()
	start := time.Now()
	if !closedSoon(quiet, 3*time.Second) {
		t.Fatal("idle connection not closed")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before the idle timeout", d)
	}
	time.Sleep(300 * time.Millisecond)
	close(stopBusy)
	if err := <-busyErr; err != nil {
		t.Fatalf("busy connection: %v", err)
	}
	waitFor(t, "the idle timeout counted", func() bool { return r.Stats().IdleTimeouts == 1 })
}

// TestNotTLSRefused: a client whose first bytes are not a TLS handshake
// record (plain HTTP here) is closed before any upstream is dialled.
func TestNotTLSRefused(t *testing.T) {
	up := newBackend(t, 'A')
	r, addr, _ := startRelay(t, testConfig(up))
	for _, first := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		record(recApplicationData, []byte("data first")),
		{recHandshake, 3, 3, 0xff, 0xff}, // longer than a record may be
		{recHandshake, 3, 3, 0, 0},       // empty hello
	} {
		c := dialFrom(t, addr, "")
		c.Write(first)
		if !closedSoon(c, 2*time.Second) {
			t.Fatalf("first bytes %q: connection left open", first)
		}
	}
	if got := r.Stats().NotTLS; got != 4 {
		t.Fatalf("NotTLS = %d, want 4", got)
	}
	if got := r.Stats().Relayed; got != 0 {
		t.Fatalf("%d non-TLS clients relayed", got)
	}
}

// TestConfigChecked: New refuses a relay with no upstream, a malformed
// one or one given twice.
func TestConfigChecked(t *testing.T) {
	for _, ups := range [][]string{nil, {"no-port"}, {"a:1", "a:1"}} {
		if _, err := New(Config{Upstreams: ups}); err == nil {
			t.Errorf("upstreams %q accepted", ups)
		}
	}
}

// TestLogsNoClientAddresses: by default, even at debug level, the log
// holds no client address (relayed, refused or timed out); with
// LogClientAddresses it does.
func TestLogsNoClientAddresses(t *testing.T) {
	for _, logAddrs := range []bool{false, true} {
		up := newBackend(t, 'A')
		var buf syncBuffer
		cfg := testConfig(up)
		cfg.MaxPerSource = 1
		cfg.HandshakeTimeout = 100 * time.Millisecond
		cfg.StatsEvery = 10 * time.Millisecond
		cfg.LogClientAddresses = logAddrs
		cfg.Log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		_, addr, stop := startRelay(t, cfg)
		c, _ := relayed(t, addr, "127.0.0.3")
		refused, _ := relayed(t, addr, "127.0.0.3")
		slow := dialFrom(t, addr, "127.0.0.4")
		closedSoon(slow, time.Second)
		c.Close()
		if refused != nil {
			refused.Close()
		}
		time.Sleep(50 * time.Millisecond)
		stop()
		log := buf.String()
		has := strings.Contains(log, "127.0.0.3") || strings.Contains(log, "127.0.0.4")
		if has != logAddrs {
			t.Errorf("LogClientAddresses=%v: client addresses in the log: %v\n%s", logAddrs, has, log)
		}
		if !strings.Contains(log, "accepted=") {
			t.Errorf("no counts logged:\n%s", log)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
