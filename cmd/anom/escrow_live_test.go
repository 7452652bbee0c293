package main

import (
	"anom/internal/archive/archivetest"
	"anom/internal/clocktest"
	"anom/internal/servertest"
	"anom/internal/tlstest"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"anom/client"
	"anom/escrow"
	"anom/internal/archive"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
	"anom/internal/server"
	"anom/internal/store"
	"anom/internal/store/pebble"
)

// liveNet is a real server (in-process, TLS on loopback, Pebble on disk)
// with an escrow policy, whose escrow fixtures (root, custodians, issuer,
// countersigning key) come from escrowtest.
type liveNet struct {
	t     *testing.T
	esc   *escrowtest.Network
	dist  *servertest.Distributor
	st    *pebble.Store
	srv   *server.Server
	addr  string
	caPEM []byte
	pool  *x509.CertPool
	token string
	net   client.Network
	clock clocktest.Clock
}

func newLiveNet(t *testing.T) *liveNet {
	t.Helper()
	n := &liveNet{t: t, esc: escrowtest.New(t, 7, 2, 3), token: "archive-token-0123456789abcdef0123456789"}
	pki := tlstest.New(t, "server.anom", "127.0.0.1")
	n.caPEM, n.pool = pki.CAPEM(), pki.Pool
	var err error
	if n.st, err = pebble.Open(filepath.Join(t.TempDir(), "server"), pebble.Options{Now: n.clock.Now}); err != nil {
		t.Fatal(err)
	}
	policy, err := n.esc.Policy.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	n.srv, err = server.New(context.Background(), server.Config{Store: n.st, RootPublic: n.esc.Root.Public(), Directory: n.esc.Directory,
		Countersign: n.esc.Countersign, CountersignCert: n.esc.CountersignCert, TLS: pki.Server, Name: "test.anom", Now: n.clock.Now,
		EscrowPolicy: policy, ArchiveToken: n.token,
		AlertDir: filepath.Join(t.TempDir(), "alerts")})
	if err != nil {
		t.Fatal(err)
	}
	n.addr, _ = servertest.Serve(t, n.srv, n.st, "127.0.0.1:0")
	n.dist = servertest.AddDistributor(t, n.srv, n.esc.Root)
	n.net = client.Network{Address: n.addr, CAFingerprint: sha256.Sum256(pki.CADER), Root: n.esc.Root.Public(), TLSServerName: "server.anom"}
	return n
}

// liveDevice is a real client activated on the live network.
type liveDevice struct {
	c      *client.Client
	events chan client.Event
}

func (n *liveNet) device(name string) *liveDevice {
	t := n.t
	t.Helper()
	code := n.dist.Code(t, n.srv, 12, 24*time.Hour)
	d := &liveDevice{events: make(chan client.Event, 10000)}
	c, err := client.Create(client.Config{Dir: filepath.Join(t.TempDir(), name), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1},
		Now: n.clock.Now, KeyPackages: 2, OnEvent: func(e client.Event) { d.events <- e }}, "314159", "")
	if err != nil {
		t.Fatal(err)
	}
	d.c = c
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Activate(ctx, n.net, code.String(), name); err != nil {
		t.Fatalf("activating %s: %v", name, err)
	}
	return d
}

func (d *liveDevice) wait(t *testing.T, typ client.EventType) client.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-d.events:
			if e.Type == client.EventEscrowMismatch {
				t.Errorf("unexpected escrow mismatch: %s", e.Text)
			}
			if e.Type == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no event %d", typ)
		}
	}
}

// archiveClient is the archive's HTTPS client of the server's outbox.
func (n *liveNet) archiveSource() *archive.HTTPSource {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool, MinVersion: tls.VersionTLS13}}
	return &archive.HTTPSource{URL: "https://" + n.addr, Client: &http.Client{Transport: bearerTransport{token: n.token, base: tr}, Timeout: time.Minute}}
}

func contentBytes(t *testing.T, c *client.Content) []byte {
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEscrowLive: real clients exchange texts and an attachment through a
// real server under an escrow policy; the archive ingests the server's
// outbox over HTTPS; a warrant for one user and a time window, opened with
// 2 of 3 custodians (one is down), gives exactly that user's messages in
// the window, and the attachment byte for byte.
func TestEscrowLive(t *testing.T) {
	n := newLiveNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, bob := n.device("alice"), n.device("bob")
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(t, client.EventJoined)

	want := map[string][]byte{} // plaintext (content encoding) -> attachment
	send := func(d *liveDevice, text string, inScope bool) {
		c := &client.Content{Kind: client.KindText, Text: text}
		if err := d.c.Send(ctx, g, c); err != nil {
			t.Fatal(err)
		}
		if inScope {
			want[string(contentBytes(t, c))] = nil
		}
	}
	t0 := n.clock.Now()
	send(alice, "alice before the window", false)
	send(bob, "bob before the window", false)
	n.clock.Advance(time.Hour)
	send(alice, "alice in the window", true)
	photo := make([]byte, 300<<10)
	rand.Read(photo)
	att, err := alice.c.SendAttachment(ctx, g, bytes.NewReader(photo), int64(len(photo)), "image/jpeg", "harbour.jpg", 0)
	if err != nil {
		t.Fatal(err)
	}
	want[string(contentBytes(t, att))] = photo
	send(bob, "bob in the window", false)
	send(alice, "alice again in the window", true)
	n.clock.Advance(time.Hour)
	send(alice, "alice after the window", false)
	for range 5 { // alice's messages, each checked by bob
		bob.wait(t, client.EventMessage)
	}

	// The archive ingests everything over HTTPS.
	st, err := pebble.Open(filepath.Join(t.TempDir(), "archive"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := archive.New(ctx, archive.Config{Store: st, Policy: n.esc.Policy, Root: n.esc.Root.Public(), Log: n.archiveSource(), Attachments: contentAttachments{}, ClientCertificate: &n.esc.ArchiveCert})
	if err != nil {
		t.Fatal(err)
	}
	src := n.archiveSource()
	for {
		k, err := a.IngestOnce(ctx, src, 4)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	found, err := a.Find(ctx, archive.Query{})
	if err != nil || len(found) != 7 {
		t.Fatalf("archive holds %d records, want 7: %v", len(found), err)
	}

	var eps []custodian.Endpoint
	var custs []*escrowtest.Custodian
	for i := range 3 {
		c := n.esc.StartCustodian(t, i, time.Now)
		custs = append(custs, c)
		eps = append(eps, c.Endpoint)
	}
	// Custodian B is down: 2 of 3 remain.
	custs[1].Stop()

	sw := n.esc.Warrant(t, escrow.Warrant{ID: "W-live", Scope: escrow.Scope{Usernames: []string{"alice"}},
		From: t0.Add(30 * time.Minute), To: t0.Add(90 * time.Minute), Issued: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour)})
	out := filepath.Join(t.TempDir(), "opened")
	if _, err := a.Open(ctx, sw, eps, out, archive.OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	// Custodian B is down, so A and C opened every record.
	archivetest.CheckOpened(t, out, want, "alice", "A,C")
}

// TestEscrowLiveArchiveCrash: kill -9 of the archive process while it
// ingests from the real server over HTTPS; every item it acknowledged is
// in its store, and after a restart every message the server acknowledged
// to its sender has its record in the archive.
func TestEscrowLiveArchiveCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	n := newLiveNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice, bob := n.device("alice"), n.device("bob")
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(t, client.EventJoined)
	const total = 300
	for i := range total {
		if err := alice.c.SendText(ctx, g, fmt.Sprintf("message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// What the outbox holds: cursor -> slot of each record.
	slots := map[uint64][32]byte{}
	var last uint64
	for after := uint64(0); ; {
		items, err := n.srv.EscrowSource().Pull(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			if it.Kind == archive.KindRecord {
				sr, err := escrow.ParseServerRecord(it.Data)
				if err != nil {
					t.Fatal(err)
				}
				slots[it.Cursor], _ = sr.Signed.Record.Metadata.Slot()
			}
			after, last = it.Cursor, it.Cursor
		}
	}
	if len(slots) != total {
		t.Fatalf("outbox holds %d records for %d acknowledged messages", len(slots), total)
	}

	dir := t.TempDir()
	files := map[string][]byte{"ca.pem": n.caPEM, "token": []byte(n.token + "\n"), "root.pub": []byte(hex.EncodeToString(n.esc.Root.Public()) + "\n")}
	if files["policy"], err = n.esc.Policy.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	archDir := filepath.Join(dir, "archive")
	serve := func() *osProc {
		cmd, _ := startAnom(t, "archive", "serve", "--source", "https://"+n.addr, "--source-ca", filepath.Join(dir, "ca.pem"),
			"--source-token", filepath.Join(dir, "token"), "--poll", "10ms", "--batch", "7",
			"--data", archDir, "--policy", filepath.Join(dir, "policy"), "--root", filepath.Join(dir, "root.pub"))
		return &osProc{cmd.Process, cmd.Wait}
	}
	acked := func() uint64 {
		c, err := n.st.Cursor(ctx, server.EscrowOutboxLog, store.QueueConsumer)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitAckedLive := func(want uint64) {
		deadline := time.Now().Add(60 * time.Second)
		for acked() < want {
			if time.Now().After(deadline) {
				t.Fatalf("archive acknowledged %d of %d items", acked(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	p := serve()
	waitAckedLive(40)
	if err := p.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait()
	upTo := acked()
	if upTo >= last {
		t.Fatalf("ingest finished before the kill (acked %d of %d); make the test bigger", upTo, last)
	}
	check := func(upTo uint64) {
		st, err := pebble.Open(filepath.Join(archDir, "store"), pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		a, err := archive.New(ctx, archive.Config{Store: st, Policy: n.esc.Policy, Root: n.esc.Root.Public()})
		if err != nil {
			t.Fatal(err)
		}
		if a.Cursor() < upTo {
			t.Fatalf("archive cursor %d below the acknowledged %d", a.Cursor(), upTo)
		}
		for c, slot := range slots {
			if c > upTo {
				continue
			}
			if _, err := a.Record(ctx, slot); err != nil {
				t.Fatalf("acknowledged item %d lost: %v", c, err)
			}
		}
	}
	check(upTo)
	t.Logf("killed after %d of %d outbox items were acknowledged", upTo, last)
	p = serve()
	waitAckedLive(last)
	p.proc.Signal(syscall.SIGTERM)
	p.wait()
	check(last)
}

type osProc struct {
	proc *os.Process
	wait func() error
}
