package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/archive"
	"anom/internal/escrowtest"
	"anom/internal/store"
	"anom/internal/store/pebble"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

func escrowNetwork(t *testing.T) *network {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newNetworkWithRoot(t, root, func(c *Config) {
		c.EscrowPolicy = escrowtest.SignedPolicy(t, root.Signer(), 1)
		c.ArchiveToken = "archive-secret"
		c.AlertDir = filepath.Join(t.TempDir(), "alerts")
		c.BlobTTL = time.Hour
	})
}

// sealed encrypts plaintext for m's group and seals its escrow record as a
// client would (the exporter is the group's).
func sealed(t *testing.T, n *network, m *member, plaintext []byte, at time.Time) (*mls.MLSMessage, *escrow.Record) {
	t.Helper()
	msg, gen, err := m.group.EncryptWithGeneration(plaintext, nil)
	if err != nil {
		t.Fatal(err)
	}
	md := escrow.Metadata{NetworkID: EscrowNetworkID(n.root.Public()), GroupID: m.group.GroupID(), Epoch: m.group.Epoch(),
		SenderLeaf: uint32(m.group.LeafIndex()), Generation: gen, SenderDevice: m.cert.DeviceID[:], ContentType: 1, SentAt: at}
	sp, _ := escrow.ParseSignedPolicy(n.cfg.EscrowPolicy)
	rec, err := escrow.Seal(sp.Policy.EscrowKey, m.group.Export("anom escrow v1", nil, 32), md, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return msg, rec
}

func sendRecord(g []byte, msg *mls.MLSMessage, rec []byte) *anomv1.Frame {
	f := send(g, msg, nil)
	f.GetSend().EscrowRecord = rec
	return f
}

func signRec(t *testing.T, rec *escrow.Record, key ed25519.PrivateKey) []byte {
	t.Helper()
	s, err := escrow.SignRecord(rec, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEscrowPolicyLogged(t *testing.T) {
	n := escrowNetwork(t)
	c := n.activate("carol", n.codes(1, 1)[0])
	check := func() uint64 {
		p := c.must(&anomv1.Frame{Body: &anomv1.Frame_GetEscrowPolicy{GetEscrowPolicy: &anomv1.GetEscrowPolicy{}}}).GetEscrowPolicy_()
		if !bytes.Equal(p.GetPolicy(), n.cfg.EscrowPolicy) {
			t.Fatal("served policy differs from the configured one")
		}
		e, err := translog.DecodeEntry(p.GetLogEntry())
		if err != nil || e.Kind != translog.KindEscrowPolicy || !bytes.Equal(e.Payload, p.GetPolicy()) {
			t.Fatalf("log entry %v %v", e, err)
		}
		var sth translog.SignedTreeHead
		if err := sth.UnmarshalBinary(p.GetTreeHead()); err != nil {
			t.Fatal(err)
		}
		if _, err := identity.VerifyTreeHead(n.root.Public(), sth, translog.SignedTreeHead{}); err != nil {
			t.Fatal(err)
		}
		var proof translog.InclusionProof
		if err := proof.UnmarshalBinary(p.GetInclusionProof()); err != nil {
			t.Fatal(err)
		}
		if proof.Index != p.GetLogIndex() || proof.Verify(translog.HashLeaf(p.GetLogEntry()), sth.Root) != nil {
			t.Fatalf("inclusion proof does not verify for index %d", p.GetLogIndex())
		}
		id, key, _ := n.srv.EscrowServerKey()
		if p.GetServerKeyId() != "test.anom/1" || id != "test.anom/1" || !bytes.Equal(p.GetServerKey(), key) {
			t.Fatalf("server key %q %x", p.GetServerKeyId(), p.GetServerKey())
		}
		return p.GetLogIndex()
	}
	idx := check()
	n.restart()
	c, _ = n.connect(c)
	if again := check(); again != idx {
		t.Fatalf("policy logged again after restart: index %d, was %d", again, idx)
	}
	// A new policy with the same version is refused at start; a higher
	// version is logged.
	n.stop()
	n.cfg.EscrowPolicy = escrowtest.SignedPolicy(t, n.root.Signer(), 1)
	cfg := n.cfg
	if _, err := newServerOnly(t, n, cfg); err == nil || !strings.Contains(err.Error(), "not above") {
		t.Fatalf("same-version policy accepted: %v", err)
	}
	n.cfg.EscrowPolicy = escrowtest.SignedPolicy(t, n.root.Signer(), 2)
	n.start()
	c, _ = n.connect(c)
	if again := check(); again == idx {
		t.Fatal("version 2 not logged")
	}
}

func TestEscrowSend(t *testing.T) {
	n := escrowNetwork(t)
	g := gid("escrow")
	alice, bob := setupGroup(t, n, g)
	now := n.clock.Now()

	// Without a record: refused.
	msg, rec := sealed(t, n, alice, []byte("hello bob"), now)
	if r := alice.call(send(g, msg, nil)); code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
		t.Fatalf("send without record: %v", r)
	}
	// Bad records: signed by another key, for another leaf, device,
	// epoch or network, or claiming a time far off.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	bad := map[string][]byte{"foreign signature": signRec(t, rec, other), "garbage": []byte("not a record")}
	for name, mod := range map[string]func(m *escrow.Metadata){
		"leaf":    func(m *escrow.Metadata) { m.SenderLeaf = 1 },
		"device":  func(m *escrow.Metadata) { m.SenderDevice = bob.cert.DeviceID[:] },
		"epoch":   func(m *escrow.Metadata) { m.Epoch++ },
		"network": func(m *escrow.Metadata) { m.NetworkID = []byte("other") },
		"group":   func(m *escrow.Metadata) { m.GroupID = gid("other") },
		"time":    func(m *escrow.Metadata) { m.SentAt = now.Add(-time.Hour) },
	} {
		r2 := *rec
		mod(&r2.Metadata)
		bad[name] = signRec(t, &r2, alice.priv)
	}
	for name, b := range bad {
		if r := alice.call(sendRecord(g, msg, b)); code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
			t.Errorf("%s: %v", name, r)
		}
	}
	// A valid record: sent, countersigned, delivered with the message.
	good := signRec(t, rec, alice.priv)
	sent := alice.must(sendRecord(g, msg, good)).GetSent()
	p := bob.nextPush().GetPushMessages().GetMessages()[0]
	if p.GetSeq() != sent.GetSeq() {
		t.Fatalf("pushed %d, sent %d", p.GetSeq(), sent.GetSeq())
	}
	sr, err := escrow.ParseServerRecord(p.GetEscrowRecord())
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := n.srv.EscrowServerKey()
	if err := sr.Verify(key); err != nil || string(sr.ServerID) != "test.anom/1" || sr.Sequence == 0 {
		t.Fatalf("countersignature: %v %q %d", err, sr.ServerID, sr.Sequence)
	}
	if b, _ := sr.Signed.MarshalBinary(); !bytes.Equal(b, good) {
		t.Fatal("delivered record is not the sent one")
	}
	// The same slot again (the same message replayed, or another
	// plaintext under the same generation): refused.
	if r := alice.call(sendRecord(g, msg, good)); code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD || !strings.Contains(r.GetError().GetMessage(), "already has a record") {
		t.Fatalf("second record for the slot: %v", r)
	}
	// The outbox holds the countersigning key's certificate (from the
	// start), alice's certificate, then the record, once.
	src := n.srv.EscrowSource()
	items, err := src.Pull(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Kind != archive.KindOnlineKey || items[1].Kind != archive.KindCertificate || items[2].Kind != archive.KindRecord || !bytes.Equal(items[2].Data, p.GetEscrowRecord()) {
		t.Fatalf("outbox: %d items", len(items))
	}
	// The certificate item is its log index and log entry.
	if e, err := translog.DecodeEntry(items[1].Data[8:]); err != nil || e.Kind != translog.KindDeviceCertificate || !bytes.Equal(e.Payload, alice.cert.Encode()) {
		t.Fatalf("certificate item: %v", err)
	}
	items = items[1:]
	// A second message: no second certificate. Bob's reply has his.
	msg2, rec2 := sealed(t, n, alice, []byte("second"), now)
	alice.must(sendRecord(g, msg2, signRec(t, rec2, alice.priv)))
	bob.nextPush()
	if _, err := bob.group.Handle(mustDecode(t, p.GetMessage())); err != nil {
		t.Fatal(err)
	}
	msg3, rec3 := sealed(t, n, bob, []byte("reply"), now)
	bob.must(sendRecord(g, msg3, signRec(t, rec3, bob.priv)))
	items, _ = src.Pull(context.Background(), items[1].Cursor, 100)
	if len(items) != 3 || items[0].Kind != archive.KindRecord || items[1].Kind != archive.KindCertificate || items[2].Kind != archive.KindRecord {
		t.Fatalf("outbox after more messages: %+v", items)
	}
	if err := src.Ack(context.Background(), items[2].Cursor+1); err == nil {
		t.Fatal("ack beyond the outbox accepted")
	}
	if err := src.Ack(context.Background(), items[2].Cursor); err != nil {
		t.Fatal(err)
	}
	if items, _ := src.Pull(context.Background(), 0, 100); len(items) != 0 {
		t.Fatalf("acknowledged items pulled again: %d", len(items))
	}

	// Bob reports alice's second message as false: the admin sees it.
	r := bob.must(&anomv1.Frame{Body: &anomv1.Frame_ReportEscrowMismatch{ReportEscrowMismatch: &anomv1.ReportEscrowMismatch{
		GroupId: g, Seq: sent.GetSeq() + 1, SenderDevice: alice.cert.DeviceID[:], Field: "ciphertext"}}})
	if r.GetOk() == nil {
		t.Fatal(r)
	}
	// A report naming the wrong sender is refused.
	if r := bob.call(&anomv1.Frame{Body: &anomv1.Frame_ReportEscrowMismatch{ReportEscrowMismatch: &anomv1.ReportEscrowMismatch{
		GroupId: g, Seq: sent.GetSeq() + 1, SenderDevice: bob.cert.DeviceID[:], Field: "ciphertext"}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("report with the wrong sender: %v", r)
	}
	alerts, err := n.srv.Alerts(context.Background(), 1)
	if err != nil || len(alerts) != 1 {
		t.Fatalf("alerts %v %v", alerts, err)
	}
	a := alerts[0]
	if a.Kind != AlertKindMismatch || a.Sender != hex.EncodeToString(alice.cert.DeviceID[:]) || a.ReporterUser != "bob" || a.Seq != sent.GetSeq()+1 || a.Field != "ciphertext" {
		t.Fatalf("alert %+v", a)
	}
	files, _ := filepath.Glob(filepath.Join(n.cfg.AlertDir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("alert files %v", files)
	}
	var fa Alert
	if b, err := os.ReadFile(files[0]); err != nil || json.Unmarshal(b, &fa) != nil || fa.Sender != a.Sender {
		t.Fatalf("alert file: %v %+v", err, fa)
	}
}

func TestEscrowBlobsAndArchivePull(t *testing.T) {
	n := escrowNetwork(t)
	c := n.activate("dave", n.codes(1, 1)[0])
	hc := n.httpClient()
	upload := func(data []byte) string {
		g := c.must(&anomv1.Frame{Body: &anomv1.Frame_RequestBlobUpload{RequestBlobUpload: &anomv1.RequestBlobUpload{Size: uint64(len(data))}}}).GetBlobGrant()
		req, _ := http.NewRequest(http.MethodPut, "https://"+n.addr+"/v1/blobs/"+g.GetId(), bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+g.GetPutToken())
		resp, err := hc.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload: %v %v", resp, err)
		}
		resp.Body.Close()
		return g.GetId()
	}
	blob := bytes.Repeat([]byte("sealed blob "), 1000)
	id := upload(blob)

	// The archive pulls over HTTPS with the token; without it, nothing.
	src := &archive.HTTPSource{URL: "https://" + n.addr, Client: hc}
	if _, err := src.Pull(context.Background(), 0, 10); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("pull without token: %v", err)
	}
	src.Client = &http.Client{Transport: bearerTransport{token: "archive-secret", base: hc.Transport}}
	items, err := src.Pull(context.Background(), 0, 10)
	if err != nil || len(items) != 2 || items[0].Kind != archive.KindOnlineKey || items[1].Kind != archive.KindBlob || items[1].BlobID != id || !bytes.Equal(items[1].Data, blob) {
		t.Fatalf("pulled %d items (%v), want the countersigning key and the blob", len(items), err)
	}
	// Past its TTL but not yet archived: kept.
	n.clock.Advance(2 * time.Hour)
	if err := n.srv.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.st.StatBlob(context.Background(), id); err != nil {
		t.Fatalf("blob not yet archived was swept: %v", err)
	}
	if err := src.Ack(context.Background(), items[1].Cursor); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.st.StatBlob(context.Background(), id); err == nil {
		t.Fatal("archived blob past its TTL kept")
	}
	// A fresh blob, archived: kept until its TTL.
	id2 := upload([]byte("another"))
	items, _ = src.Pull(context.Background(), 0, 10)
	if len(items) != 1 || items[0].BlobID != id2 {
		t.Fatalf("pulled %+v", items)
	}
	if err := src.Ack(context.Background(), items[0].Cursor); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.st.StatBlob(context.Background(), id2); err != nil {
		t.Fatalf("archived blob swept before its TTL: %v", err)
	}
}

// TestEscrowServerHoldsNoPlaintext: after messages with records, no
// plaintext is anywhere in the server's store files.
func TestEscrowServerHoldsNoPlaintext(t *testing.T) {
	n := escrowNetwork(t)
	g := gid("plain")
	alice, bob := setupGroup(t, n, g)
	var secrets [][]byte
	for i := range 20 {
		var r [16]byte
		rand.Read(r[:])
		pt := []byte("secret-" + hex.EncodeToString(r[:]))
		secrets = append(secrets, pt)
		m := alice
		if i%2 == 1 {
			m = bob
		}
		msg, rec := sealed(t, n, m, pt, n.clock.Now())
		m.must(sendRecord(g, msg, signRec(t, rec, m.priv)))
		other := bob
		if m == bob {
			other = alice
		}
		p := other.nextPush().GetPushMessages().GetMessages()[0]
		if _, err := other.group.Handle(mustDecode(t, p.GetMessage())); err != nil {
			t.Fatal(err)
		}
	}
	n.stop()
	found, sane := 0, false
	err := filepath.WalkDir(n.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, s) || bytes.Contains(b, []byte(hex.EncodeToString(s))) {
				t.Errorf("plaintext %q in %s", s, path)
			}
		}
		// The scan sees stored bytes as they are: the certificates'
		// usernames are there in clear.
		sane = sane || bytes.Contains(b, []byte("alice"))
		found++
		return nil
	})
	if err != nil || found == 0 || !sane {
		t.Fatalf("scanned %d files (usernames seen: %v): %v", found, sane, err)
	}
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// newServerOnly opens the network's store and makes a server with cfg
// without serving, returning New's error.
func newServerOnly(t *testing.T, n *network, cfg Config) (*Server, error) {
	t.Helper()
	st, err := pebble.Open(n.dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg.Store = st
	return New(context.Background(), cfg)
}

// slotClaims lists the server's slot claims (keys of bucketSlots, and
// logs as earlier versions kept them).
func slotClaims(t *testing.T, n *network) []string {
	t.Helper()
	names, _, err := n.srv.st.ListLogs(context.Background(), store.ListOptions{Prefix: slotLogPre})
	if err != nil {
		t.Fatal(err)
	}
	page, _, err := n.srv.st.List(context.Background(), bucketSlots, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page {
		names = append(names, e.Key)
	}
	return names
}

// The claims of a past epoch's slots are swept; the current epoch's stay
// and still refuse a second record, and a message of the past epoch is
// refused for its epoch before any slot is looked at.
func TestEscrowSlotClaimsSwept(t *testing.T) {
	n := escrowNetwork(t)
	ctx := context.Background()
	g := gid("slots")
	alice, bob := setupGroup(t, n, g)
	now := n.clock.Now()
	var old []*anomv1.Frame
	for i := range 3 {
		msg, rec := sealed(t, n, alice, fmt.Appendf(nil, "message %d", i), now)
		f := sendRecord(g, msg, signRec(t, rec, alice.priv))
		alice.must(f)
		bob.nextPush()
		old = append(old, f)
	}
	if got := slotClaims(t, n); len(got) != 3 {
		t.Fatalf("%d slot claims after 3 messages: %v", len(got), got)
	}
	// Sweeping in the same epoch keeps every claim.
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := slotClaims(t, n); len(got) != 3 {
		t.Fatalf("%d slot claims after a sweep in the same epoch", len(got))
	}
	if r := alice.call(old[0]); code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
		t.Fatalf("replay in the same epoch: %v", r)
	}

	pc, err := alice.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.must(send(g, pc.Commit, nil))
	if err := alice.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	bob.nextPush()
	msg, rec := sealed(t, n, alice, []byte("new epoch"), now)
	current := sendRecord(g, msg, signRec(t, rec, alice.priv))
	alice.must(current)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got := slotClaims(t, n)
	if len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf(".%016x.", alice.group.Epoch())) {
		t.Fatalf("slot claims after the sweep: %v (epoch %d)", got, alice.group.Epoch())
	}
	// The current claim still refuses a second record for its slot.
	if r := alice.call(current); code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD || !strings.Contains(r.GetError().GetMessage(), "already has a record") {
		t.Fatalf("replay in the current epoch: %v", r)
	}
	// A swept slot cannot be claimed again: its epoch is refused first.
	for _, f := range old {
		if r := alice.call(f); code(r) != anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT {
			t.Fatalf("past-epoch replay after the sweep: %v", r)
		}
	}
	if got := slotClaims(t, n); len(got) != 1 {
		t.Fatalf("slot claims after the refused replays: %v", got)
	}
}
