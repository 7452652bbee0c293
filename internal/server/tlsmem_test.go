package server

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// TestTLSBufferLayout fails when this Go release lays tls.Conn out so
// that releaseTLSBuffers cannot find the read buffers: idle connections
// would then keep about 3.5 KiB more each.
func TestTLSBufferLayout(t *testing.T) {
	if !tlsBuffers.ok {
		t.Fatal("crypto/tls.Conn has no rawInput/input/hand buffers where expected: idle TLS connections keep their read buffers (see tlsmem.go)")
	}
}

// tlsPair returns the two ends of a TLS 1.3 connection over TCP, after
// the handshake.
func tlsPair(t *testing.T) (server, client *tls.Conn) {
	t.Helper()
	sc, pool := testTLS(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		tc := tls.Server(c, sc)
		if err := tc.Handshake(); err != nil {
			c.Close()
			accepted <- nil
			return
		}
		accepted <- tc
	}()
	client, err = tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("server handshake failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// tlsBufferCaps returns the capacities of a connection's raw input and
// handshake buffers.
func tlsBufferCaps(c *tls.Conn) (raw, hand int) {
	p := unsafe.Pointer(c)
	mu := (*sync.Mutex)(unsafe.Add(p, tlsBuffers.in))
	mu.Lock()
	defer mu.Unlock()
	return (*bytes.Buffer)(unsafe.Add(p, tlsBuffers.rawInput)).Cap(), (*bytes.Buffer)(unsafe.Add(p, tlsBuffers.hnd)).Cap()
}

func TestReleaseTLSBuffers(t *testing.T) {
	if !tlsBuffers.ok {
		t.Skip("layout not found; TestTLSBufferLayout reports it")
	}
	server, client := tlsPair(t)
	if raw, hand := tlsBufferCaps(server); raw < 1024 || hand < 256 {
		t.Fatalf("after the handshake the buffers hold %d and %d bytes; expected the client hello's size", raw, hand)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // one 16000-byte record
	// Records written one after the other in both directions, with the
	// buffers released between them, arrive whole and in order.
	for round := range 3 {
		msg := append([]byte{byte(round)}, big...)
		go func() { _, _ = client.Write(msg) }()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(server, got); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("round %d: data changed", round)
		}
		if !releaseTLSBuffers(server) {
			t.Fatalf("round %d: nothing buffered, yet not released", round)
		}
		if raw, hand := tlsBufferCaps(server); raw != 0 || hand != 0 {
			t.Fatalf("round %d: after release the buffers hold %d and %d bytes", round, raw, hand)
		}
		go func() { _, _ = server.Write(msg) }()
		if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round %d: server to client after release: %v", round, err)
		}
	}
	// Data buffered in the TLS layer (a record read only in part) is
	// never dropped: the buffers are kept.
	if _, err := client.Write([]byte("hello world")); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 5)
	if _, err := io.ReadFull(server, part); err != nil {
		t.Fatal(err)
	}
	if releaseTLSBuffers(server) {
		t.Fatal("released a buffer holding unread data")
	}
	rest := make([]byte, 6)
	if _, err := io.ReadFull(server, rest); err != nil || string(part)+string(rest) != "hello world" {
		t.Fatalf("read %q%q, %v", part, rest, err)
	}
	// A read that finds nothing (as the session's look for buffered data
	// does) leaves the connection usable after a release.
	_ = server.SetReadDeadline(time.Unix(1, 0))
	if _, err := server.Read(part[:1]); err == nil {
		t.Fatal("read with a past deadline returned data")
	}
	_ = server.SetReadDeadline(time.Time{})
	releaseTLSBuffers(server)
	go func() { _, _ = client.Write([]byte("again")) }()
	if _, err := io.ReadFull(server, part); err != nil || string(part) != "again" {
		t.Fatalf("read %q, %v", part, err)
	}
	// Connections other than *tls.Conn are left alone.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if releaseTLSBuffers(a) {
		t.Fatal("released a plain connection's buffers")
	}
}

// BenchmarkReleaseTLSBuffers is the cost on each return to idle.
func BenchmarkReleaseTLSBuffers(b *testing.B) {
	var c tls.Conn
	for b.Loop() {
		releaseTLSBuffers(&c)
	}
}
