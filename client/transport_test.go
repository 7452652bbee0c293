package client

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// countingTransport wraps the default transport and counts what goes
// through it.
type countingTransport struct {
	inner        Transport
	dials, https atomic.Int32
	fail         atomic.Bool
}

var errRefused = errors.New("test transport refuses")

func (t *countingTransport) WebSocket(ctx context.Context, n Network, url string) (MessageConn, error) {
	t.dials.Add(1)
	if t.fail.Load() {
		return nil, errRefused
	}
	return t.inner.WebSocket(ctx, n, url)
}

func (t *countingTransport) HTTP(n Network) *http.Client {
	t.https.Add(1)
	return t.inner.HTTP(n)
}

// TestCustomTransport: a Client reaches the server only through
// Config.Transport: activation, connecting and the blob client.
func TestCustomTransport(t *testing.T) {
	n := newTestNet(t)
	bob := n.newDevice("bob")
	ctx := ctxT(t)
	tr := &countingTransport{inner: DefaultTransport()}
	cfg := Config{Dir: filepath.Join(t.TempDir(), "alice"), KDF: testKDF, Now: n.clock.Now, KeyPackages: 4, Transport: tr}
	c, err := Create(cfg, testPIN, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Activate(ctx, n.net, n.code(12), "alice"); err != nil {
		t.Fatal(err)
	}
	if tr.dials.Load() != 1 || tr.https.Load() != 1 {
		t.Fatalf("activation: %d dials, %d HTTP clients; want 1 and 1", tr.dials.Load(), tr.https.Load())
	}
	g, err := c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(ctx, g, "through the seam"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("through the seam")
	c.Close()

	if c, err = Open(cfg, testPIN); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr.fail.Store(true)
	if err := c.Connect(ctx); !errors.Is(err, errRefused) {
		t.Fatalf("Connect through a refusing transport: %v", err)
	}
	tr.fail.Store(false)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tr.dials.Load(); got != 3 {
		t.Fatalf("%d dials, want 3", got)
	}
	// The default pins the network's CA: a network pinning another CA
	// is refused.
	other := n.net
	other.CAFingerprint[0] ^= 1
	if _, err := DefaultTransport().WebSocket(ctx, other, wsURL(other)); !errors.Is(err, ErrPin) {
		t.Fatalf("default transport with the wrong CA pinned: %v, want ErrPin", err)
	}
}
