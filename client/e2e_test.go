package client

import (
	"anom/internal/clocktest"
	"anom/internal/servertest"
	"anom/internal/tlstest"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/server"
	"anom/internal/store/pebble"
)

// testNet is an in-process server over real TLS on loopback.
type testNet struct {
	t     *testing.T
	root  *identity.RootKey
	dir   *identity.DirectorySigner // the server's directory key
	dist  *servertest.Distributor
	srv   *server.Server
	net   Network
	clock *clocktest.Clock
}

func newTestNet(t *testing.T) *testNet { return newTestNetWith(t, nil) }

// newTestNetWith is newTestNet with a change to the server's
// configuration (made with the network's root key).
func newTestNetWith(t *testing.T, mod func(*server.Config, *identity.RootKey)) *testNet {
	t.Helper()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A network CA and a server certificate issued by it.
	pki := tlstest.New(t, "server.anom")

	// The store stamps log entries by the server's clock, as in
	// production, so tests that advance it age messages.
	clock := &clocktest.Clock{}
	st, err := pebble.Open(filepath.Join(t.TempDir(), "server"), pebble.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, TLS: pki.Server, Name: "test.anom", Now: clock.Now, SweepInterval: 50 * time.Millisecond}
	keys := servertest.Keys(t, &cfg, root)
	if mod != nil {
		mod(&cfg, root)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := servertest.Serve(t, srv, st, "127.0.0.1:0")
	dist := servertest.AddDistributor(t, srv, root)
	n := Network{Address: addr, CAFingerprint: sha256.Sum256(pki.CADER), Root: root.Public(), TLSServerName: "server.anom"}
	return &testNet{t: t, root: root, dir: keys.Directory, dist: dist, srv: srv, net: n, clock: clock}
}

func (n *testNet) code(months int) string {
	n.t.Helper()
	return n.dist.Code(n.t, n.srv, months, 24*time.Hour).String()
}

// device is a test user's client with its events.
type device struct {
	t      *testing.T
	name   string
	cfg    Config
	c      *Client
	events chan Event
}

func (n *testNet) newDevice(name string) *device {
	n.t.Helper()
	d := &device{t: n.t, name: name, events: make(chan Event, 1000)}
	d.cfg = Config{Dir: filepath.Join(n.t.TempDir(), name), KDF: testKDF, Now: n.clock.Now, KeyPackages: 4,
		OnEvent: func(e Event) { d.events <- e }}
	c, err := Create(d.cfg, testPIN, testDuress)
	if err != nil {
		n.t.Fatal(err)
	}
	d.c = c
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Activate(ctx, n.net, n.code(12), name); err != nil {
		n.t.Fatalf("activating %s: %v", name, err)
	}
	n.t.Cleanup(func() { d.c.Close() })
	return d
}

// wait returns the first event of type typ (skipping others) or fails.
func (d *device) wait(typ EventType) Event {
	d.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-d.events:
			if e.Type == typ {
				return e
			}
			if e.Type == EventError {
				d.t.Logf("%s: event error: %v", d.name, e.Err)
			}
		case <-timeout:
			d.t.Fatalf("%s: no event %d", d.name, typ)
		}
	}
}

func (d *device) waitText(want string) *Message {
	d.t.Helper()
	for {
		e := d.wait(EventMessage)
		if e.Message.Content.Kind == KindText && e.Message.Content.Text == want {
			return e.Message
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEndToEnd(t *testing.T) {
	n := newTestNet(t)
	alice, bob, carol := n.newDevice("alice"), n.newDevice("bob"), n.newDevice("carol")
	ctx := ctxT(t)

	// 1:1 chat.
	g1, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if e := bob.wait(EventJoined); !bytes.Equal(e.Group, g1) {
		t.Fatalf("bob joined %x, want %x", e.Group, g1)
	}
	if err := alice.c.SendText(ctx, g1, "hi bob"); err != nil {
		t.Fatal(err)
	}
	if m := bob.waitText("hi bob"); m.Username != "alice" {
		t.Fatalf("from %q", m.Username)
	}
	if err := bob.c.SendText(ctx, g1, "hi alice"); err != nil {
		t.Fatal(err)
	}
	alice.waitText("hi alice")

	// Members show every device with its certificate.
	ms, err := bob.c.Members(g1)
	if err != nil || len(ms) != 2 || ms[0].Username != "alice" || ms[1].Username != "bob" || !ms[1].Self || ms[0].Err != nil {
		t.Fatalf("members %+v %v", ms, err)
	}
	// Safety numbers agree on both sides.
	aid, _ := alice.c.Identity()
	bid, _ := bob.c.Identity()
	sa, _ := alice.c.SafetyNumber(bid.Certificate)
	sb, _ := bob.c.SafetyNumber(aid.Certificate)
	if sa != sb {
		t.Fatal("safety numbers differ")
	}

	// Sync is idempotent; the test network has no escrow policy yet.
	if err := alice.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if pol, _, err := alice.c.EscrowPolicy(ctx); err != nil || len(pol) != 0 {
		t.Fatalf("escrow policy %x %v", pol, err)
	}

	// A group of three; carol is offline while messages are sent.
	g2, err := alice.c.CreateGroup(ctx, "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	carol.wait(EventJoined)
	bob.wait(EventJoined)
	if err := carol.c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three"} {
		if err := alice.c.SendText(ctx, g2, s); err != nil {
			t.Fatal(err)
		}
	}
	if carol.c, err = Open(carol.cfg, testPIN); err != nil {
		t.Fatal(err)
	}
	if err := carol.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	hist, err := carol.c.History(g2)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range hist {
		texts = append(texts, m.Content.Text)
	}
	if len(texts) != 3 || texts[0] != "one" || texts[2] != "three" {
		t.Fatalf("carol's history after catching up: %q", texts)
	}

	// An attachment.
	file := bytes.Repeat([]byte("photo bytes "), 20000)
	sent, err := alice.c.SendAttachment(ctx, g2, bytes.NewReader(file), int64(len(file)), "image/jpeg", "p.jpg", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got *Message
	for got == nil {
		if e := bob.wait(EventMessage); e.Message.Content.Kind == KindAttachment {
			got = e.Message
		}
	}
	if got.Content.Attachment.BlobID != sent.Attachment.BlobID {
		t.Fatal("blob IDs differ")
	}
	var out bytes.Buffer
	if err := bob.c.FetchAttachment(ctx, got.Content.Attachment, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), file) {
		t.Fatal("attachment differs")
	}

	// Removing carol: she sees it and gets nothing after.
	if err := alice.c.RemoveMembers(ctx, g2, "carol"); err != nil {
		t.Fatal(err)
	}
	carol.wait(EventRemoved)
	if err := alice.c.SendText(ctx, g2, "after carol"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("after carol")
	if err := carol.c.SendText(ctx, g2, "still here?"); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("carol sending after removal: %v", err)
	}

	// Remote wipe of bob.
	if _, err := n.srv.Wipe(context.Background(), bid.DeviceID, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if e := bob.wait(EventWiped); e.Text != "remote wipe" {
		t.Fatalf("wipe reason %q", e.Text)
	}
	if _, err := Open(bob.cfg, testPIN); !errors.Is(err, ErrNoState) {
		t.Fatalf("bob's state after the wipe: %v", err)
	}

	// Revoking carol: she is refused at connect.
	cid, _ := carol.c.Identity()
	if _, err := n.srv.Revoke(context.Background(), cid.DeviceID, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	carol.c.Close()
	if carol.c, err = Open(carol.cfg, testPIN); err != nil {
		t.Fatal(err)
	}
	if err := carol.c.Connect(ctx); !IsCode(err, CodeRevoked) {
		t.Fatalf("revoked device connecting: %v", err)
	}
}

func TestExpiredSubscription(t *testing.T) {
	n := newTestNet(t)
	alice := n.newDevice("alice")
	ctx := ctxT(t)

	// Past the subscription (12 months), the server refuses the device.
	alice.c.Close()
	n.clock.Set(400 * 24 * time.Hour)
	c, err := Open(alice.cfg, testPIN)
	if err != nil {
		t.Fatal(err)
	}
	alice.c = c
	if err := c.Connect(ctx); !IsCode(err, CodeExpired) {
		t.Fatalf("expired device connecting: %v", err)
	}
}

func TestAutoWipeWhenUnreachable(t *testing.T) {
	n := newTestNet(t)
	d := &device{t: t, name: "dave", events: make(chan Event, 100)}
	d.cfg = Config{Dir: filepath.Join(t.TempDir(), "dave"), KDF: testKDF, Now: n.clock.Now, WipeAfter: 3 * 24 * time.Hour,
		OnEvent: func(e Event) { d.events <- e }}
	c, err := Create(d.cfg, testPIN, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Activate(ctxT(t), n.net, n.code(12), "dave"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	n.clock.Set(2 * 24 * time.Hour)
	if c, err = Open(d.cfg, testPIN); err != nil {
		t.Fatalf("within the limit: %v", err)
	}
	if err := c.CheckOverdue(); err != nil {
		t.Fatal(err)
	}
	n.clock.Set(3*24*time.Hour + time.Minute)
	if err := c.CheckOverdue(); !errors.Is(err, ErrWiped) {
		t.Fatalf("overdue device: %v", err)
	}
	d.wait(EventWiped)
	if _, err := Open(d.cfg, testPIN); !errors.Is(err, ErrNoState) {
		t.Fatalf("after auto-wipe: %v", err)
	}
}

func TestPinnedCA(t *testing.T) {
	n := newTestNet(t)
	tests := []struct {
		name string
		mod  func(*Network)
	}{
		{"other fingerprint", func(nw *Network) { nw.CAFingerprint[0] ^= 1 }},
		{"other server name", func(nw *Network) { nw.TLSServerName = "evil.anom" }},
		{"CA certificate not matching the pin", func(nw *Network) { nw.CACert = []byte("not the CA") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Create(Config{Dir: filepath.Join(t.TempDir(), "d"), KDF: testKDF}, testPIN, "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			nw := n.net
			tt.mod(&nw)
			if err := c.Activate(ctxT(t), nw, n.code(1), "mallory"); !errors.Is(err, ErrPin) {
				t.Fatalf("activating against an unpinned server: %v, want ErrPin", err)
			}
			if _, err := c.Identity(); !errors.Is(err, ErrNotActivated) {
				t.Fatalf("identity after a failed activation: %v", err)
			}
		})
	}
}
