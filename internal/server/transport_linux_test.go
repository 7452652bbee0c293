package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"anom/identity"
	anomv1 "anom/proto/anom/v1"
)

// TestRevocationCutsClientThatDoesNotRead: a revoked device whose
// connection is stuck in a write (it stopped reading, its buffers are
// full) is cut within about a second, not after the write timeout.
func TestRevocationCutsClientThatDoesNotRead(t *testing.T) {
	n := newNetwork(t, func(c *Config) { c.Limits.SendQueue = 1 << 20 })
	g := gid("stuck")
	alice, bob := setupGroup(t, n, g)
	// A second connection of Bob's that authenticates, then never reads.
	ctx := context.Background()
	// Its receive buffer is small and fixed (no autotuning to tens of
	// megabytes), so the server's writes block soon.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, TLSClientConfig: &tls.Config{RootCAs: n.pool}}}
	ws, _, err := websocket.Dial(ctx, "wss://"+n.addr+"/v1/ws", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(4 << 20)
	rawCall := func(f *anomv1.Frame) *anomv1.Frame {
		t.Helper()
		b, _ := proto.Marshal(f)
		if err := ws.Write(ctx, websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
		_, rb, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var r anomv1.Frame
		if err := proto.Unmarshal(rb, &r); err != nil || r.GetError() != nil {
			t.Fatalf("answer %v, %v", &r, err)
		}
		return &r
	}
	ch := rawCall(&anomv1.Frame{Id: 1, Body: &anomv1.Frame_Hello{Hello: &anomv1.Hello{Version: 1}}}).GetChallenge().GetNonce()
	rawCall(&anomv1.Frame{Id: 2, Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{Certificate: bob.cert.Encode(), Signature: identity.SignAuthResponse(bob.priv, "test.anom", ch)}}})
	// Alice's large messages fill the stuck connection's buffers.
	big := make([]byte, 800<<10)
	for range 16 {
		m, err := alice.group.Encrypt(big, nil)
		if err != nil {
			t.Fatal(err)
		}
		alice.must(send(g, m, nil))
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := n.srv.Revoke(ctx, bob.cert.DeviceID, "test", n.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// Without reading anything more, Bob's sessions are gone from the
	// server soon (the stuck write does not hold the cut back).
	for len(n.srv.hub.of(bob.cert.DeviceID)) > 0 {
		if time.Since(start) > 3*time.Second {
			t.Fatal("stuck session still open 3s after its revocation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("stuck session cut after %v", time.Since(start))
	// Reading drains what was buffered, then meets the end.
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			break
		}
	}
}
