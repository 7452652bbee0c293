package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/clocktest"
	"anom/internal/server"
	"anom/internal/servertest"
	"anom/internal/store/pebble"
	"anom/internal/tlstest"
)

// cutProxy forwards TCP connections to a server. Once cut is armed, the
// first bytes coming back from the server are dropped and the connection
// is closed: the request got through, its answer is lost.
type cutProxy struct {
	target atomic.Value // string
	armed  atomic.Bool
	// armedReq, when set, drops the next bytes from the client instead
	// (the request never reaches the server) and closes the connection.
	armedReq atomic.Bool
	cut      chan struct{}
}

func newCutProxy(t *testing.T, target string) (*cutProxy, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{cut: make(chan struct{}, 1)}
	p.target.Store(target)
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	return p, l.Addr().String()
}

func (p *cutProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target.Load().(string))
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		defer s.Close()
		defer c.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 && p.armedReq.CompareAndSwap(true, false) {
				p.cut <- struct{}{}
				return
			}
			if n > 0 {
				if _, err := s.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 && p.armed.CompareAndSwap(true, false) {
			p.cut <- struct{}{}
			return
		}
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// newRestartableNet is newTestNet with a function that kills the server
// and starts it again on its store, and one that has the devices made
// next connect through a cutProxy of their own.
func newRestartableNet(t *testing.T) (*testNet, func(), func() *cutProxy) {
	t.Helper()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pki := tlstest.New(t, "server.anom")
	dir := filepath.Join(t.TempDir(), "server")
	// The store stamps entries with the test's clock too: the timer
	// sweep compares those stamps with the server's clock.
	clock := &clocktest.Clock{}
	st, err := pebble.Open(dir, pebble.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, TLS: pki.Server, Name: "test.anom", Now: clock.Now, SweepInterval: 50 * time.Millisecond}
	keys := servertest.Keys(t, &cfg, root)
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := servertest.Serve(t, srv, st, "127.0.0.1:0")
	var proxies []*cutProxy
	dist := servertest.AddDistributor(t, srv, root)
	n := Network{Address: addr, CAFingerprint: sha256.Sum256(pki.CADER), Root: root.Public(), TLSServerName: "server.anom"}
	tn := &testNet{t: t, root: root, dir: keys.Directory, dist: dist, srv: srv, net: n, clock: clock}
	restart := func() {
		t.Helper()
		stop()
		st, err := pebble.Open(dir, pebble.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Store = st
		srv, err := server.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var addr string
		addr, stop = servertest.Serve(t, srv, st, "127.0.0.1:0")
		tn.srv = srv
		for _, p := range proxies {
			p.target.Store(addr)
		}
	}
	newProxy := func() *cutProxy {
		p, paddr := newCutProxy(t, addr)
		proxies = append(proxies, p)
		tn.net.Address = paddr
		return p
	}
	return tn, restart, newProxy
}

// TestLostCommitAnswer: the server stores a commit but its maker never
// gets the answer (the connection drops, or the server is killed, inside
// the commit call). The maker must not fork: on catching up it finds its
// commit in the log and moves to its epoch with everyone else, across a
// restart of its own too (issue 9, item 10).
func TestLostCommitAnswer(t *testing.T) {
	for _, kill := range []bool{false, true} {
		name := "dropped"
		if kill {
			name = "killed"
		}
		t.Run(name, func(t *testing.T) {
			n, restart, newProxy := newRestartableNet(t)
			proxy := newProxy()
			alice := n.newDevice("alice")
			newProxy()
			bob, carol := n.newDevice("bob"), n.newDevice("carol")
			ctx := ctxT(t)
			g, err := alice.c.CreateGroup(ctx, "bob", "carol")
			if err != nil {
				t.Fatal(err)
			}
			bob.wait(EventJoined)
			carol.wait(EventJoined)

			testHookCommitSending = func() { proxy.armed.Store(true) }
			err = alice.c.RemoveMembers(ctx, g, "carol")
			testHookCommitSending = nil
			if err == nil {
				t.Fatal("the commit's answer was lost, yet RemoveMembers succeeded")
			}
			select {
			case <-proxy.cut:
			default:
				t.Fatal("the proxy cut nothing")
			}
			carol.wait(EventRemoved) // the server stored the commit
			if kill {
				restart()
				// Alice restarts as well: the pending commit is durable.
				alice.c.Close()
				if alice.c, err = Open(alice.cfg, testPIN); err != nil {
					t.Fatal(err)
				}
				for _, d := range []*device{bob, carol} {
					d.c.Close()
					if d.c, err = Open(d.cfg, testPIN); err != nil {
						t.Fatal(err)
					}
					if err := d.c.Connect(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := alice.c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			ga, gb := groupEpoch(t, alice.c, g), groupEpoch(t, bob.c, g)
			if ga != gb {
				t.Fatalf("alice at epoch %d, bob at %d", ga, gb)
			}
			ms, err := alice.c.Members(g)
			if err != nil {
				t.Fatal(err)
			}
			if u := usernames(ms); u["carol"] != 0 || u["bob"] != 1 {
				t.Fatalf("alice's members %v", u)
			}
			if err := alice.c.SendText(ctx, g, "still one group"); err != nil {
				t.Fatal(err)
			}
			bob.waitText("still one group")
			if err := bob.c.SendText(ctx, g, "yes"); err != nil {
				t.Fatal(err)
			}
			alice.waitText("yes")
			// Alice can commit again.
			if err := alice.c.AddMembers(ctx, g, "carol"); err != nil {
				t.Fatal(err)
			}
			carol.wait(EventJoined)
		})
	}
}

func groupEpoch(t *testing.T, c *Client, id []byte) uint64 {
	t.Helper()
	for _, g := range c.Groups() {
		if string(g.ID) == string(id) {
			return g.Epoch
		}
	}
	t.Fatalf("no group %x", id)
	return 0
}

// TestUnsentCommitSettled: the connection drops before the commit reaches
// the server. The commit stays pending; the next commit sends it first,
// as it was, and the group stays one (issue 9, item 10).
func TestUnsentCommitSettled(t *testing.T) {
	n, _, newProxy := newRestartableNet(t)
	proxy := newProxy()
	alice := n.newDevice("alice")
	newProxy()
	bob, carol := n.newDevice("bob"), n.newDevice("carol")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	carol.wait(EventJoined)
	epoch := groupEpoch(t, bob.c, g)

	testHookCommitSending = func() { proxy.armedReq.Store(true) }
	err = alice.c.RemoveMembers(ctx, g, "carol")
	testHookCommitSending = nil
	if err == nil {
		t.Fatal("the commit never left, yet RemoveMembers succeeded")
	}
	<-proxy.cut
	if err := alice.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if e := groupEpoch(t, bob.c, g); e != epoch {
		t.Fatalf("the server took a commit that never reached it: bob at epoch %d", e)
	}
	// Sending still works in the old epoch; the commit is still pending.
	if err := alice.c.SendText(ctx, g, "before"); err != nil {
		t.Fatal(err)
	}
	carol.waitText("before")
	// The next commit settles it first: carol goes, dave comes.
	dave := n.newDevice("dave")
	if err := alice.c.AddMembers(ctx, g, "dave"); err != nil {
		t.Fatal(err)
	}
	carol.wait(EventRemoved)
	dave.wait(EventJoined)
	if err := alice.c.SendText(ctx, g, "after"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("after")
	dave.waitText("after")
	if ga, gb := groupEpoch(t, alice.c, g), groupEpoch(t, bob.c, g); ga != gb {
		t.Fatalf("alice at epoch %d, bob at %d", ga, gb)
	}
}
