package systest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/client"
	"anom/escrow"
	"anom/identity"
	"anom/internal/archive"
	"anom/internal/natstest"
	"anom/internal/netsetup"
)

// networkName is the name the tests' networks are made with.
const networkName = "systest"

// cluster is a network run as a cluster: made by anom admin init with a 2
// of 3 escrow (admin escrow init), its state in a 3-node NATS JetStream
// cluster (in-process), served by anom server processes each on its own
// copy of the network directory, with anom relay in front of them.
type cluster struct {
	t    *testing.T
	dir  string
	data netsetup.Dir // the network as admin init made it (its root and admin folders beside it)
	keys string       // escrow init's --out: a folder per custodian and the warrant issuer
	nats *natstest.Cluster

	servers []*clusterServer
	relay   *proc
	// relayAddr is where devices connect: the relay.
	relayAddr string

	root   identity.RootPublicKey
	caFP   [32]byte
	pool   *x509.CertPool
	policy *escrow.SignedPolicy
}

// clusterServer is one anom server process of the cluster.
type clusterServer struct {
	*proc
	addr string
	data netsetup.Dir
}

// newCluster makes the network with the anom commands, starts the NATS
// cluster, then the servers one after the other (the first makes the
// network's streams) and the relay in front of them.
func newCluster(t *testing.T, servers int) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir()}
	c.data = netsetup.Dir(filepath.Join(c.dir, "net"))
	c.keys = filepath.Join(c.dir, "escrow-keys")
	runAnom(t, "admin", "init", "--data", c.data.Path(), "--name", networkName)
	if out := runAnom(t, "admin", "escrow", "init", "--data", c.data.Path(), "--out", c.keys, "--custodians", "A,B,C", "--threshold", "2"); !strings.Contains(out, "2 of 3 custodians: A, B, C") {
		t.Fatalf("admin escrow init said:\n%s", out)
	}
	ni, err := c.data.Info()
	if err != nil {
		t.Fatal(err)
	}
	root, err := hex.DecodeString(ni.RootPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c.root = identity.RootPublicKey(root)
	fp, err := hex.DecodeString(ni.CAFingerprint)
	if err != nil || len(fp) != len(c.caFP) {
		t.Fatalf("CA fingerprint %q: %v", ni.CAFingerprint, err)
	}
	copy(c.caFP[:], fp)
	if c.pool, err = c.data.CAPool(); err != nil {
		t.Fatal(err)
	}
	pb, err := os.ReadFile(c.data.Path("escrow-policy"))
	if err != nil {
		t.Fatal(err)
	}
	if c.policy, err = escrow.ParseSignedPolicy(pb); err != nil {
		t.Fatalf("the escrow policy admin escrow init wrote: %v", err)
	}

	c.nats = natstest.Start(t, 3)
	var addrs []string
	for i := range servers {
		s := &clusterServer{addr: freeAddr(t), data: netsetup.Dir(filepath.Join(c.dir, fmt.Sprintf("server-%d", i)))}
		copyDir(t, c.data.Path(), s.data.Path())
		s.proc = start(t, fmt.Sprintf("server-%d", i), "server", "--data", s.data.Path(), "--listen", s.addr,
			"--metrics-listen", "off", "--nats", c.nats.URL())
		s.waitLog(t, "invite (in ")
		c.servers = append(c.servers, s)
		addrs = append(addrs, s.addr)
	}
	c.relayAddr = freeAddr(t)
	c.relay = start(t, "relay", "relay", "--listen", c.relayAddr, "--upstream", strings.Join(addrs, ","),
		"--health-every", "100ms", "--grace", "100ms")
	c.relay.waitListen(t, c.relayAddr)
	return c
}

// admin runs an anom admin command on the network, sent to server 0.
func (c *cluster) admin(args ...string) string {
	c.t.Helper()
	return runAnom(c.t, append(append([]string{"admin"}, args...), "--data", c.data.Path(), "--server", c.servers[0].addr)...)
}

// codes makes a distributor and n activation codes with the admin
// commands.
func (c *cluster) codes(n int) []identity.ActivationCode {
	c.t.Helper()
	c.admin("distributor", "add", "shop", "--quota", fmt.Sprint(n))
	var codes []identity.ActivationCode
	for _, f := range strings.Fields(c.admin("codes", "issue", "--distributor", "shop", "--count", fmt.Sprint(n), "--months", "1")) {
		if code, err := identity.ParseActivationCode(f); err == nil {
			codes = append(codes, code)
		}
	}
	if len(codes) != n {
		c.t.Fatalf("anom admin codes issue gave %d codes, want %d", len(codes), n)
	}
	return codes
}

// network is the network as a device reaches it at addr (a server, or the
// relay).
func (c *cluster) network(addr string) client.Network {
	return client.Network{Address: addr, CAFingerprint: c.caFP, Root: c.root}
}

// outbox is the escrow outbox as the archive reads it through addr (a
// server or the relay): HTTPS with the network's CA and the archive token
// of that server's copy of the directory (or of the network's own).
func (c *cluster) outbox(addr string, d netsetup.Dir) *archive.HTTPSource {
	c.t.Helper()
	b, err := os.ReadFile(d.Path(netsetup.ArchiveTokenFile))
	if err != nil {
		c.t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pool, MinVersion: tls.VersionTLS13}}
	return &archive.HTTPSource{URL: "https://" + addr, Client: &http.Client{
		Transport: bearer{token: strings.TrimSpace(string(b)), base: tr}, Timeout: 30 * time.Second}}
}

// bearer adds the archive's bearer token to each request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// pullAll reads every item of the outbox the archive has not acknowledged.
func pullAll(t *testing.T, ctx context.Context, src archive.Source) []archive.Item {
	t.Helper()
	var all []archive.Item
	for after := uint64(0); ; {
		items, err := src.Pull(ctx, after, 1000)
		if err != nil {
			t.Fatalf("pulling the escrow outbox: %v", err)
		}
		if len(items) == 0 {
			return all
		}
		all = append(all, items...)
		after = items[len(items)-1].Cursor
	}
}

// device is a real client (package client) activated on the network.
type device struct {
	name   string
	c      *client.Client
	events chan client.Event
}

// activate makes a device with its own directory and activates it with
// code through n; it checks that the device verified the 2 of 3 escrow
// policy.
func (c *cluster) activate(ctx context.Context, name string, code identity.ActivationCode, n client.Network) *device {
	c.t.Helper()
	d := &device{name: name, events: make(chan client.Event, 10000)}
	cl, err := client.Create(client.Config{Dir: filepath.Join(c.dir, "device-"+name), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1},
		KeyPackages: 2, OnEvent: func(e client.Event) { d.events <- e }}, "314159", "")
	if err != nil {
		c.t.Fatal(err)
	}
	d.c = cl
	c.t.Cleanup(func() { cl.Close() })
	if err := cl.Activate(ctx, n, code.String(), name); err != nil {
		c.t.Fatalf("activating %s through %s: %v", name, n.Address, err)
	}
	if info, err := cl.Escrow(); err != nil || info.Policy == nil || info.Policy.Threshold != 2 {
		c.t.Fatalf("%s did not verify the 2 of 3 escrow policy: %+v, %v", name, info, err)
	}
	return d
}

// wait waits for an event of type typ; an escrow mismatch on the way
// fails the test.
func (d *device) wait(t *testing.T, typ client.EventType) client.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-d.events:
			if e.Type == client.EventEscrowMismatch {
				t.Errorf("%s: escrow mismatch: %s", d.name, e.Text)
			}
			if e.Type == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("%s: no event %d in 20s", d.name, typ)
		}
	}
}

// run keeps the device connected (client.Run) with quick reconnects
// until the test ends.
func (d *device) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- d.c.Run(ctx, client.RunOptions{SyncEvery: time.Second, ReconnectMin: 20 * time.Millisecond,
			ReconnectMax: 200 * time.Millisecond, Timeout: 5 * time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			t.Errorf("%s: client.Run: %v", d.name, err)
		}
	})
}
