package relay

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"anom/internal/tlstest"
)

// tap records the bytes read from and written to a connection.
type tap struct {
	net.Conn
	mu     sync.Mutex
	rd, wr bytes.Buffer
}

func (c *tap) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.rd.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tap) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.wr.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// bytes returns what was read and what was written.
func (c *tap) bytes() (rd, wr []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.rd.Bytes()), bytes.Clone(c.wr.Bytes())
}

// TestNoPlaintext: the relay is handed TLS and passes it through as is.
// The client verifies the certificate of the server behind the relay
// (which the relay does not have), the server receives exactly the bytes
// the client sent, and a secret sent inside the session appears in none
// of them.
func TestNoPlaintext(t *testing.T) {
	pki := tlstest.New(t, "server.anom")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	received := make(chan *tap, 1)
	go func() {
		var raw *tap
		var s *tls.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			raw = &tap{Conn: c}
			s = tls.Server(raw, pki.Server)
			if s.Handshake() == nil {
				break
			}
			c.Close() // the relay's health check
		}
		io.Copy(s, s) // echo until the client closes
		s.Close()
		received <- raw
	}()
	cfg := Config{Upstreams: []string{l.Addr().String()}, HealthEvery: time.Hour, StatsEvery: -1}
	r, addr, _ := startRelay(t, cfg)

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	raw := &tap{Conn: nc}
	c := tls.Client(raw, &tls.Config{RootCAs: pki.Pool, ServerName: "server.anom", MinVersion: tls.VersionTLS13})
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS through the relay: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0].DNSNames; len(got) == 0 || got[0] != "server.anom" {
		t.Fatalf("peer certificate names %v, want the server's", got)
	}
	secret := []byte("the plaintext no relay may see")
	if _, err := c.Write(secret); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len(secret))
	if _, err := io.ReadFull(c, echo); err != nil || !bytes.Equal(echo, secret) {
		t.Fatalf("echo %q %v", echo, err)
	}
	c.CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
	clientRead, clientWrote := raw.bytes()
	var srv *tap
	select {
	case srv = <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not finish")
	}
	serverRead, serverWrote := srv.bytes()
	if !bytes.Equal(clientWrote, serverRead) || !bytes.Equal(serverWrote, clientRead) {
		t.Fatalf("the relay changed the stream: client wrote %d bytes, server read %d; server wrote %d, client read %d",
			len(clientWrote), len(serverRead), len(serverWrote), len(clientRead))
	}
	waitFor(t, "the relay's counts", func() bool { return r.Stats().Active == 0 })
	if st := r.Stats(); st.BytesUp != uint64(len(clientWrote)) || st.BytesDown != uint64(len(clientRead)) {
		t.Fatalf("relay counted %d up, %d down; want %d, %d", st.BytesUp, st.BytesDown, len(clientWrote), len(clientRead))
	}
	for _, b := range [][]byte{clientWrote, clientRead, serverRead, serverWrote} {
		if bytes.Contains(b, secret) {
			t.Fatal("the secret crossed the relay in the clear")
		}
	}
}
