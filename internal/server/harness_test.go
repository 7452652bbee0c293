package server

import (
	"anom/internal/clocktest"
	"anom/internal/tlstest"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"anom/identity"
	"anom/internal/store"
	"anom/internal/store/pebble"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// network is an in-process server over real TLS on loopback.
type network struct {
	t       testing.TB
	dir     string
	root    *identity.RootKey
	dist    *identity.DistributorKey
	tlsConf *tls.Config
	pool    *x509.CertPool
	clock   *clocktest.Clock
	srv     *Server
	addr    string
	stop    func()
	cfg     Config
	// node, if not "", makes the server one of a cluster: its pushes
	// go through a StoreFanout under this node name (cluster_test.go).
	node string
	// open, if set, opens the server's store and fan-out instead of a
	// Pebble store in dir (natscluster_test.go); the store is closed
	// with the server.
	open func() (store.Store, Fanout)
}

func testTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	p := tlstest.New(t, "127.0.0.1", "localhost")
	return p.Server, p.Pool
}

func newNetwork(t testing.TB, mod func(*Config)) *network {
	t.Helper()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newNetworkWithRoot(t, root, mod)
}

// testServerKeys certifies a server's online keys with root for 20 years,
// so tests that move the clock stay inside their validity.
func testServerKeys(t testing.TB, root *identity.RootKey, now time.Time) *identity.ServerKeys {
	t.Helper()
	k, err := identity.NewServerKeys(root, "test.anom", now, 20*365*24*time.Hour, 1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newNetworkWithRoot(t testing.TB, root *identity.RootKey, mod func(*Config)) *network {
	t.Helper()
	return newNetworkNode(t, root, "", mod)
}

// newNetworkNode is newNetworkWithRoot for the server of a cluster named
// node ("" for a lone server).
func newNetworkNode(t testing.TB, root *identity.RootKey, node string, mod func(*Config)) *network {
	t.Helper()
	return newNetworkOn(t, root, node, nil, mod)
}

// newNetworkOn is newNetworkNode on the store and fan-out open makes (nil:
// Pebble in a temporary directory).
func newNetworkOn(t testing.TB, root *identity.RootKey, node string, open func() (store.Store, Fanout), mod func(*Config)) *network {
	t.Helper()
	dist, _ := identity.GenerateDistributorKey(rand.Reader)
	tc, pool := testTLS(t)
	n := &network{t: t, dir: t.TempDir(), root: root, dist: dist, tlsConf: tc, pool: pool, clock: &clocktest.Clock{}, node: node, open: open}
	keys := testServerKeys(t, root, n.clock.Now())
	n.cfg = Config{RootPublic: root.Public(), Directory: keys.Directory, Countersign: keys.Countersign, CountersignCert: keys.CountersignCert,
		TLS: tc, Name: "test.anom", Now: n.clock.Now, SweepInterval: 50 * time.Millisecond, BlobKey: make([]byte, 32)}
	if mod != nil {
		mod(&n.cfg)
	}
	n.start()
	dc := &identity.DistributorCertificate{Name: "shop", Key: dist.Public(), Quota: 1000}
	if err := root.SignDistributorCertificate(dc); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.AddDistributor(context.Background(), dc); err != nil {
		t.Fatal(err)
	}
	return n
}

// start opens the store and serves; stop shuts down and closes the store.
func (n *network) start() {
	t := n.t
	cfg := n.cfg
	var st store.Store
	if n.open != nil {
		st, cfg.Fanout = n.open()
	} else {
		var err error
		if st, err = pebble.Open(n.dir, pebble.Options{Now: n.clock.Now}); err != nil {
			t.Fatal(err)
		}
		if n.node != "" {
			cfg.Fanout = NewStoreFanout(st, []byte(n.node))
		}
	}
	cfg.Store = st
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	n.srv, n.addr = srv, l.Addr().String()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Errorf("closing store: %v", err)
			}
		})
	}
	t.Cleanup(n.stop)
}

func (n *network) restart() {
	n.stop()
	n.start()
}

// codes issues activation codes through the distributor.
func (n *network) codes(count, months int) []identity.ActivationCode {
	n.t.Helper()
	b := &identity.CodeBatch{Distributor: "shop", Months: uint8(months), Expires: n.clock.Now().Add(24 * time.Hour)}
	var out []identity.ActivationCode
	for range count {
		c, _ := identity.NewActivationCode(rand.Reader)
		out = append(out, c)
		b.Hashes = append(b.Hashes, c.Hash())
	}
	if err := n.dist.SignCodeBatch(b); err != nil {
		n.t.Fatal(err)
	}
	if err := n.srv.ImportCodes(context.Background(), b); err != nil {
		n.t.Fatal(err)
	}
	return out
}

func (n *network) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool}}}
}

// client is a minimal test client: one WebSocket, requests answered in
// order, pushes collected on a channel.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	id     atomic.Uint64
	resp   chan *anomv1.Frame
	pushes chan *anomv1.Frame
	closed chan struct{}
	// device
	cert *identity.DeviceCertificate
	priv ed25519.PrivateKey
}

func (n *network) dial() *client {
	n.t.Helper()
	return n.dialWith(n.httpClient())
}

// dialWith opens a WebSocket through an HTTP client of the caller's.
func (n *network) dialWith(hc *http.Client) *client {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+n.addr+"/v1/ws", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		n.t.Fatal(err)
	}
	ws.SetReadLimit(4 << 20)
	c := &client{t: n.t, ws: ws, resp: make(chan *anomv1.Frame, 16), pushes: make(chan *anomv1.Frame, 1024), closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var f anomv1.Frame
			if err := proto.Unmarshal(b, &f); err != nil {
				n.t.Errorf("client: bad frame from server: %v", err)
				return
			}
			if f.Id == 0 && f.GetError() == nil {
				c.pushes <- &f
			} else {
				c.resp <- &f
			}
		}
	}()
	n.t.Cleanup(func() { ws.CloseNow() })
	return c
}

// call sends a request and waits for its answer.
func (c *client) call(f *anomv1.Frame) *anomv1.Frame {
	c.t.Helper()
	f.Id = c.id.Add(1)
	b, err := proto.Marshal(f)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.Write(context.Background(), websocket.MessageBinary, b); err != nil {
		return &anomv1.Frame{Body: &anomv1.Frame_Error{Error: &anomv1.Error{Code: anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: err.Error()}}}
	}
	select {
	case r := <-c.resp:
		if r.Id != f.Id && r.Id != 0 {
			c.t.Fatalf("response id %d for request %d", r.Id, f.Id)
		}
		return r
	case <-c.closed:
		return &anomv1.Frame{Body: &anomv1.Frame_Error{Error: &anomv1.Error{Code: anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "connection closed"}}}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no answer to %v", f)
	}
	return nil
}

// must fails the test if the answer is an error.
func (c *client) must(f *anomv1.Frame) *anomv1.Frame {
	c.t.Helper()
	r := c.call(f)
	if e := r.GetError(); e != nil {
		c.t.Fatalf("request %T failed: %v %s", f.Body, e.Code, e.Message)
	}
	return r
}

// code returns the error code of an answer (UNSPECIFIED if none).
func code(f *anomv1.Frame) anomv1.ErrorCode { return f.GetError().GetCode() }

func (c *client) hello() []byte {
	c.t.Helper()
	r := c.must(&anomv1.Frame{Body: &anomv1.Frame_Hello{Hello: &anomv1.Hello{Version: 1}}})
	return r.GetChallenge().GetNonce()
}

// activate makes a new device for username on a fresh connection.
func (n *network) activate(username string, code identity.ActivationCode) *client {
	n.t.Helper()
	c := n.dial()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ch := c.hello()
	r := c.must(&anomv1.Frame{Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{
		Code: code.String(), Username: username, SignatureKey: pub, Signature: identity.SignAuthResponse(priv, "test.anom", ch),
	}}})
	cert, err := identity.DecodeDeviceCertificate(r.GetAuthenticated().GetCertificate())
	if err != nil {
		n.t.Fatal(err)
	}
	c.cert, c.priv = cert, priv
	return c
}

// connect authenticates an existing device on a new connection.
func (n *network) connect(dev *client) (*client, *anomv1.Frame) {
	n.t.Helper()
	c := n.dial()
	c.cert, c.priv = dev.cert, dev.priv
	ch := c.hello()
	r := c.call(&anomv1.Frame{Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{Certificate: dev.cert.Encode(), Signature: identity.SignAuthResponse(dev.priv, "test.anom", ch)}}})
	return c, r
}

// member is a device with its MLS state.
type member struct {
	*client
	bundle *mls.KeyPackageBundle
	group  *mls.Group
}

func (c *client) mlsConfig(n *network) mls.Config {
	return mls.Config{ValidateCredential: identity.NewCredentialValidator(identity.ValidatorConfig{Root: n.root.Public(), Now: n.clock.Now})}
}

func (c *client) keyPackage(n *network) *mls.KeyPackageBundle {
	c.t.Helper()
	suite, _ := mls.Suite(1)
	kp, err := mls.NewKeyPackage(suite, c.cert.Credential(), mls.SignaturePrivateKey(c.priv.Seed()), mls.KeyPackageOptions{}, rand.Reader, n.clock.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return kp
}

func kpMessage(kp *mls.KeyPackage) []byte {
	return (&mls.MLSMessage{Version: 1, WireFormat: mls.WireKeyPackage, KeyPackage: kp}).Encode()
}

// nextPush waits for a push.
func (c *client) nextPush() *anomv1.Frame {
	c.t.Helper()
	select {
	case f := <-c.pushes:
		return f
	case <-time.After(10 * time.Second):
		c.t.Fatal("no push")
	}
	return nil
}

func gid(s string) []byte { return []byte(fmt.Sprintf("%-16s", s)) }
